"""spark-submit entry point of the backfill; same options as `fraud backfill`.

    spark-submit --jars "$(ls .jars/spark/*.jar | paste -sd,)" jobs/backfill.py \
        --input transactions.parquet --model models/default --sinks delta,mysql,elasticsearch,kafka
"""
import sys

from fraud.cli import main

if __name__ == "__main__":
    sys.exit(main(["backfill", *sys.argv[1:]]))
