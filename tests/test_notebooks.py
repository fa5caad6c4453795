"""The notebooks run headlessly, top to bottom, on small data: no cell raises and their key outputs exist.

Each notebook runs in a fresh kernel of this interpreter (the venv's ipykernel), with its parameters
and the stack given as ``FRAUD_*`` environment variables. The executed copies go to
``test-artifacts/notebooks/`` (git-ignored) for a look at what a reader would see; the committed
notebooks stay without outputs.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient.exceptions import CellExecutionError

from fraud.testing.notebooks import NOTEBOOKS, SMALL_SPARK, figures, result, run_notebook, text


def test_the_notebooks_are_stored_without_outputs():
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01-data-exploration.ipynb", "02-training-and-evaluation.ipynb", "03-stream-monitoring.ipynb"]
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), name


def test_a_cell_that_raises_fails_the_run(tmp_path):
    """The runner itself can fail: a notebook whose cell raises is an error, not a pass."""
    path = tmp_path / "raises.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                                   nbformat.v4.new_code_cell("raise RuntimeError('boom')")]), path)
    with pytest.raises(CellExecutionError, match="boom"):
        run_notebook(path, {}, "raises.ipynb")


def test_data_exploration_on_ten_days_of_the_dataset(data_dir):
    notebook = run_notebook(NOTEBOOKS / "01-data-exploration.ipynb",
                            {"FRAUD_DATA_DIR": str(data_dir), "FRAUD_NOTEBOOK_START": "2018-08-01",
                             "FRAUD_NOTEBOOK_DAYS": "10"}, "01-data-exploration.ipynb")
    summary = text(notebook, "summary")
    assert "transactions.parquet" in summary and "95,879" in summary  # 2018-08-01 .. 08-10
    assert figures(notebook, "distributions") == 1
    assert figures(notebook, "scenarios") == 1
    for scenario in ("amount above 220", "compromised terminal", "compromised card"):
        assert scenario in text(notebook, "scenarios")
    assert figures(notebook, "features") == 1
    assert "TERMINAL_ID_RISK_30DAY_WINDOW" in text(notebook, "features")


def test_data_exploration_falls_back_to_the_simulator_without_the_dataset(tmp_path):
    notebook = run_notebook(NOTEBOOKS / "01-data-exploration.ipynb",
                            {"FRAUD_DATA_DIR": str(tmp_path), "FRAUD_NOTEBOOK_DAYS": "4"},
                            "01-data-exploration-simulated.ipynb")
    assert "fraud.simulator" in text(notebook, "summary")
    assert [figures(notebook, tag) for tag in ("distributions", "scenarios", "features")] == [1, 1, 1]


@pytest.fixture()
def small_window(data_dir, tmp_path) -> Path:
    """2018-07-25 .. 08-08 of the dataset (a temporary slice): 3 training days, the delay and the test day
    2018-08-08, and the week before the training window, which the handbook test set looks at."""
    path = tmp_path / "slice.parquet"
    pd.read_parquet(data_dir / "transactions.parquet",
                    filters=[("TX_DATETIME", ">=", pd.Timestamp("2018-07-25")),
                             ("TX_DATETIME", "<", pd.Timestamp("2018-08-09"))]).to_parquet(path, index=False)
    return path


def test_training_and_evaluation_on_a_small_window(small_window, tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    notebook = run_notebook(NOTEBOOKS / "02-training-and-evaluation.ipynb",
                            {**SMALL_SPARK, "FRAUD_NOTEBOOK_DATA": str(small_window), "FRAUD_NOTEBOOK_TRAIN_DAYS": "3",
                             "FRAUD_NOTEBOOK_TEST_DAYS": "1", "FRAUD_NOTEBOOK_OUTPUT": str(output)},
                            "02-training-and-evaluation.ipynb")
    metrics = ast.literal_eval(result(notebook, "metrics"))
    assert set(metrics) == {"auc", "ap", "cp100", "cp100_ceiling", "cp100_by_day", "review_precision", "review_recall",
                            "block_precision", "block_recall"}
    assert 0.5 < metrics["auc"] <= 1 and 0 < metrics["ap"] <= 1 and 0 < metrics["cp100"] <= 1
    assert 0 < metrics["cp100_ceiling"] <= 1
    assert figures(notebook, "report") == 4
    assert {p.name for p in (output / "model").iterdir()} >= {"model.joblib", "metadata.json", "report"}
    assert figures(notebook, "shipped") == 1 and "2018-09-19" in result(notebook, "shipped")
    assert figures(notebook, "comparison") == 1
    comparison = result(notebook, "comparison")
    assert "on the same test days" in comparison and "handbook: random forest (default)" in comparison


def test_training_falls_back_to_simulated_days_without_the_dataset(tmp_path):
    """Without the dataset, 02 simulates its window. Run up to the split (and the last cell, which stops Spark):
    training on it is the code the test above runs, and would double this file's time."""
    notebook = nbformat.read(NOTEBOOKS / "02-training-and-evaluation.ipynb", as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    notebook.cells = notebook.cells[:tags.index(["data"]) + 1] + [notebook.cells[tags.index(["stop"])]]
    path = tmp_path / "02-until-the-split.ipynb"
    nbformat.write(notebook, path)
    notebook = run_notebook(path, {**SMALL_SPARK, "FRAUD_DATA_DIR": str(tmp_path), "FRAUD_NOTEBOOK_TRAIN_DAYS": "2",
                                   "FRAUD_NOTEBOOK_TEST_DAYS": "1", "FRAUD_NOTEBOOK_OUTPUT": str(tmp_path)},
                            "02-training-and-evaluation-simulated-split.ipynb")
    simulated = pd.read_parquet(tmp_path / "simulated.parquet")  # a week of history, 2 training days, delay, test day
    assert str(simulated.TX_DATETIME.dtype) == "datetime64[us]"
    assert simulated.TX_DATETIME.min() >= pd.Timestamp("2026-01-01")
    assert simulated.TX_DATETIME.max() < pd.Timestamp("2026-01-18") <= simulated.TX_DATETIME.max() + pd.Timedelta("1h")
    split = result(notebook, "data")
    assert "2026-01-08T00:00:00" in split and "2026-01-17T00:00:00" in split  # train start, test start


@pytest.fixture()
def empty_pipeline(pipeline):
    _, env = pipeline("nb-empty")
    return env


@pytest.mark.services
def test_stream_monitoring_says_so_when_the_tables_are_empty(empty_pipeline):
    notebook = run_notebook(NOTEBOOKS / "03-stream-monitoring.ipynb", empty_pipeline,
                            "03-stream-monitoring-empty.ipynb")
    assert "scored_transactions is empty" in text(notebook, "decisions")
    assert "Nothing scored: no latency to show" in text(notebook, "latency")
    assert "holds no scored document yet" in text(notebook, "elasticsearch")
    assert "dead_letters is empty" in text(notebook, "dead-letters")
    assert "stream_progress is empty" in text(notebook, "progress")
    assert sum(figures(notebook, tag) for tag in ("decisions", "scores", "latency", "elasticsearch",
                                                  "dead-letters", "progress")) == 0
