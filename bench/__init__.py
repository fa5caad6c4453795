"""Benchmarks (not tests): ``python bench/run.py`` (``make bench``) runs them and writes bench-results/<UTC time>/.

Each benchmark module has ``run(out: Path, quick: bool) -> Outcome``: its details
for results.json and its rows of the one results table (``bench.report``).
"""
from fraud.config import PROJECT_ROOT

MODEL = PROJECT_ROOT / "models" / "default"  # the committed model every benchmark scores with
CORES = 2  # local[2], scikit-learn threads: the cores of the machine this is measured on
