"""Shared fixtures: one local Spark session, and a service stack on test ports.

The test stack has its own ports and state directory, so ``make test`` never
touches a stack a developer is running with ``make run``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraud.config import PROJECT_ROOT, Settings, load_settings

TEST_ENV = {
    "FRAUD_STATE_DIR": str(PROJECT_ROOT / ".state" / "test-stack"),
    "FRAUD_KAFKA_PORT": "19092",
    "FRAUD_KAFKA_CONTROLLER_PORT": "19093",
    "FRAUD_ELASTICSEARCH_PORT": "19200",
    "FRAUD_ELASTICSEARCH_TRANSPORT_PORT": "19300",
    "FRAUD_MYSQL_PORT": "13306",
}


def stack_settings(**overrides: str) -> Settings:
    """Settings of the test stack (environment variables win over conf/local.yaml)."""
    env = {key: value for key, value in os.environ.items() if key != "FRAUD_MYSQL_PASSWORD"}
    return load_settings(env={**env, **TEST_ENV, **overrides})


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
