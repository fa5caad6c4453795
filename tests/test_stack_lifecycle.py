"""``fraud stack up | down | status`` as a user runs them, on a stack of its own (own ports, own state)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import read_topic
from fraud.clients.mysql import connect
from fraud.config import PROJECT_ROOT, load_settings
from fraud.stack.process import port_open

pytestmark = pytest.mark.services

STATE_DIR = PROJECT_ROOT / ".state" / "test-lifecycle"
ENV = {
    "FRAUD_STATE_DIR": str(STATE_DIR),
    "FRAUD_KAFKA_PORT": "29092", "FRAUD_KAFKA_CONTROLLER_PORT": "29093",
    "FRAUD_ELASTICSEARCH_PORT": "29200", "FRAUD_ELASTICSEARCH_TRANSPORT_PORT": "29300",
    "FRAUD_MYSQL_PORT": "23306",
}
PORTS = (29092, 29093, 29200, 29300, 23306)


def fraud(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FRAUD_MYSQL_PASSWORD"}
    return subprocess.run([sys.executable, "-m", "fraud.cli", *args], env={**env, **ENV},
                          capture_output=True, text=True, timeout=600)


def status_rows(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("service"))
    return {line.split()[0]: line.split() for line in lines[start + 1:]}


def running(pid: str) -> bool:
    """True while the process exists and is not a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def settings():
    return load_settings(env={**{k: v for k, v in os.environ.items() if k != "FRAUD_MYSQL_PASSWORD"}, **ENV})


@pytest.fixture()
def fresh_state():
    fraud("stack", "down")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    yield
    fraud("stack", "down")


def test_up_is_idempotent_down_keeps_data_and_leaves_nothing_running(fresh_state):
    first = fraud("stack", "up")
    assert first.returncode == 0, first.stderr
    rows = status_rows(first.stdout)
    assert set(rows) == {"kafka", "elasticsearch", "mariadb"}
    assert all(row[3] == "yes" for row in rows.values()), first.stdout
    pids = {name: row[1] for name, row in rows.items()}

    again = fraud("stack", "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 3
    assert {name: row[1] for name, row in status_rows(again.stdout).items()} == pids

    # leave a mark in each service
    conf = settings()
    with connect(conf) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO scored_transactions (transaction_id, tx_datetime, customer_id, terminal_id, "
                    "tx_amount) VALUES (42, '2018-04-01 00:00:01', 1, 2, 3.5)")
    elasticsearch_client(conf).index(index=conf.elasticsearch.index, id="42", refresh=True,
                                     document={"transaction_id": 42, "tx_amount": 3.5})
    producer = Producer({"bootstrap.servers": conf.kafka.bootstrap_servers})
    producer.produce(conf.kafka.topics.labels, key=b"42", value=b'{"transaction_id": 42}', partition=0)
    assert producer.flush(30) == 0

    down = fraud("stack", "down")
    assert down.returncode == 0, down.stderr
    assert not any(port_open("127.0.0.1", port) for port in PORTS)
    for pid in pids.values():
        assert not running(pid), f"pid {pid} still running after down"
    assert fraud("stack", "down").stdout.count("was not running") == 3

    assert fraud("stack", "up").returncode == 0
    with connect(conf) as conn, conn.cursor() as cur:
        cur.execute("SELECT tx_amount FROM scored_transactions WHERE transaction_id = 42")
        assert cur.fetchall() == [(3.5,)]
    assert elasticsearch_client(conf).get(index=conf.elasticsearch.index, id="42")["_source"]["tx_amount"] == 3.5
    assert [message.value() for message in read_topic(conf, conf.kafka.topics.labels)] == [b'{"transaction_id": 42}']

    assert fraud("stack", "down").returncode == 0
    assert not any(port_open("127.0.0.1", port) for port in PORTS)


def test_a_service_that_cannot_start_is_named_and_nothing_is_left_half_running(fresh_state):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 29200))
        squatter.listen()
        result = fraud("stack", "up")
    assert result.returncode != 0
    assert "elasticsearch: port 127.0.0.1:29200 is already in use" in result.stderr
    assert not any(port_open("127.0.0.1", port) for port in PORTS)
    status = fraud("stack", "status")
    assert all(row[1] == "-" for row in status_rows(status.stdout).values()), status.stdout
