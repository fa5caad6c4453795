"""The compose stack's producer: `fraud produce` with the arguments `fraud run` would use.

The simulator (no dataset in the image) resumes after the last transaction already in the
raw topic, so a restarted container continues the stream instead of sending the same ids
again. Usage: python docker/produce.py [RATE]  (events per second, default 200).
"""
import sys

from fraud.cli import main
from fraud.config import load_settings
from fraud.run import producer_args

if __name__ == "__main__":
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 200.0
    sys.exit(main(producer_args(load_settings(), rate)))
