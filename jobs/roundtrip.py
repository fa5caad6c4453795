"""spark-submit entry point of the smoke round trip (Kafka -> Spark -> every sink).

    spark-submit --jars "$(ls .jars/spark/*.jar | paste -sd,)" jobs/roundtrip.py --events 1000
"""
import argparse
import json

from fraud.config import load_settings
from fraud.roundtrip import smoke_roundtrip
from fraud.spark import build_spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--config", help="YAML configuration (default conf/local.yaml)")
    args = parser.parse_args()
    settings = load_settings(args.config)
    spark = build_spark_session(settings, "fraud-roundtrip")
    try:
        report = smoke_roundtrip(spark, settings, args.events)
    finally:
        spark.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
