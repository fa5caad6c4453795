"""spark-submit entry point of the smoke round trip (Kafka -> Spark -> every sink); same options as `fraud roundtrip`.

    spark-submit --jars "$(ls .jars/spark/*.jar | paste -sd,)" jobs/roundtrip.py --events 1000
"""
import sys

from fraud.cli import main

if __name__ == "__main__":
    sys.exit(main(["roundtrip", *sys.argv[1:]]))
