"""Shared fixtures: one local Spark session, the service stack on test ports (``fraud.testing.stack``), and
isolated pipelines on it that are removed after the test."""
from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterator

import pytest

from fraud.config import Settings
from fraud.testing.pipeline import isolated_pipeline
from fraud.testing.stack import stack_settings


@pytest.fixture(scope="session")
def stack():
    """The running test stack; stopped at the end if this session started it."""
    from fraud.stack.manager import stack_down, stack_status, stack_up
    settings = stack_settings()
    was_running = all(service.healthy for service in stack_status(settings))
    yield stack_up(settings, echo=lambda line: None)
    if not was_running:
        stack_down(settings, echo=lambda line: None)


@pytest.fixture(scope="session")
def spark():
    from fraud.spark import build_spark_session
    session = build_spark_session(stack_settings(), "fraud-tests", master="local[2]", ui=False,
                                  extra_conf={"spark.sql.shuffle.partitions": "2",
                                              "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The published dataset folder; tests that need it skip loudly only outside CI."""
    settings = stack_settings()
    if settings.data_dir is None or not (settings.data_dir / "transactions.parquet").exists():
        if os.environ.get("CI"):
            pytest.fail("the published dataset is required in CI (../shared/data/fdh or FRAUD_DATA_DIR)")
        pytest.skip("published dataset not available (set FRAUD_DATA_DIR)")
    return settings.data_dir


@pytest.fixture
def pipeline(stack, tmp_path) -> Iterator[Callable[..., tuple[Settings, dict[str, str]]]]:
    """``pipeline(name, **FRAUD_variables)`` -> (settings, environment) of a pipeline with its own topics, MySQL
    database, Elasticsearch index, Delta folder and checkpoints (under the test's tmp_path) on the test stack;
    each is removed when the test ends (stop its stream first)."""
    with ExitStack() as made:
        yield lambda name, **overrides: made.enter_context(isolated_pipeline(stack, tmp_path, name, **overrides))
