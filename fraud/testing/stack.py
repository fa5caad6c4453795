"""The test stack: the local services on their own ports and state directory, so tests and benchmarks never touch
a stack a developer runs with ``make run``."""
from __future__ import annotations

import os

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
    """Settings of the test stack (environment variables win over conf/local.yaml; ``overrides`` win over both)."""
    env = {key: value for key, value in os.environ.items() if key != "FRAUD_MYSQL_PASSWORD"}
    return load_settings(env={**env, **TEST_ENV, **overrides})


def running_test_stack() -> Settings:
    """The test stack's settings, the stack started when it is not running (ports 19092/19200/13306)."""
    from fraud.stack.manager import stack_up
    return stack_up(stack_settings(), echo=lambda line: None)
