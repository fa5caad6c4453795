"""spark-submit entry point of the streaming scorer; same options as `fraud stream`.

    spark-submit --jars "$(ls .jars/spark/*.jar | paste -sd,)" jobs/stream.py --model models
"""
import sys

from fraud.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
