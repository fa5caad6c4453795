"""spark-submit entry point: score a transaction history and write it to the sinks.

    spark-submit --jars "$(ls .jars/spark/*.jar | paste -sd,)" jobs/backfill.py \
        --input transactions.parquet --model models/default --sinks delta,mysql,elasticsearch,kafka
"""
import argparse
import json
import logging

from fraud.backfill import backfill
from fraud.config import load_settings
from fraud.sinks import SINKS
from fraud.spark import build_spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="Parquet, CSV or Delta transaction history")
    parser.add_argument("--model", default="models/default", help="model folder (default models/default)")
    parser.add_argument("--sinks", default=",".join(SINKS), help=f"comma-separated, from {','.join(SINKS)}")
    parser.add_argument("--config", help="YAML configuration (default conf/local.yaml)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    spark = build_spark_session(settings, "fraud-backfill")
    try:
        report = backfill(spark, settings, args.input, args.model, tuple(args.sinks.split(",")))
    finally:
        spark.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
