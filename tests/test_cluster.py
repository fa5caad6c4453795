"""The streaming scorer submitted to a Spark standalone cluster (a master and a worker on 127.0.0.1)
with spark-submit: jars, code zip and Python interpreter shipped as a cluster user ships them."""
from __future__ import annotations

import json
import signal
import socket
import sys
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from fraud.clients.kafka import kafka_producer
from fraud.jvm import jars
from fraud.spark import package_code
from fraud.testing.cluster import SPARK_HOME, StandaloneCluster
from fraud.testing.pipeline import DEFAULT_MODEL, StreamProcess, mysql_count

pytestmark = pytest.mark.services

SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
TRANSACTIONS = 300


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class SubmittedStream(StreamProcess):
    """``spark-submit jobs/stream.py``: the spark-submit JVM runs the Python driver as its child."""

    def __init__(self, env: dict[str, str], log_file: Path, submit_args: list[str]):
        super().__init__(env, log_file)
        self.argv = [SPARK_SUBMIT, *submit_args, "jobs/stream.py", "--model", str(DEFAULT_MODEL)]

    def stop(self) -> int | None:
        """SIGTERM to the Python driver only: it stops the queries and the session, then spark-submit exits."""
        assert self.child is not None, "not started"
        if self.child.poll() is None:
            for driver in self.child.proc.children():
                with suppress(psutil.NoSuchProcess):
                    driver.send_signal(signal.SIGTERM)
        return self.child.wait(patience_s=120)


def test_the_stream_scores_on_a_standalone_cluster(pipeline, tmp_path):
    settings, env = pipeline("cluster")
    master_port, master_ui, worker_ui = _free_ports(3)
    cluster = StandaloneCluster(tmp_path / "cluster", master_port, master_ui, worker_ui)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    producer = kafka_producer(settings)
    for i in range(TRANSACTIONS):
        at = now - timedelta(seconds=3 * (TRANSACTIONS - i))
        producer.produce(settings.kafka.topics.raw, key=str(i % 40), value=json.dumps({
            "transaction_id": 700_000 + i, "tx_datetime": at.isoformat(), "customer_id": i % 40,
            "terminal_id": i % 25, "tx_amount": 5.0 + i % 97}).encode())
    assert producer.flush(30) == 0

    submit = ["--master", cluster.master_url, "--jars", ",".join(str(jar) for jar in jars("spark")),
              "--py-files", str(package_code(tmp_path)), "--conf", f"spark.pyspark.python={sys.executable}",
              "--conf", "spark.executor.memory=768m", "--conf", "spark.log.level=WARN"]
    env = {**env, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    stream = SubmittedStream(env, tmp_path / "stream.log", submit)
    cluster.start()
    try:
        stream.start()
        stream.wait_for(lambda: mysql_count(settings) == TRANSACTIONS, 600, "every transaction scored")
        apps = [app for app in cluster.state()["activeapps"] if app["name"] == "fraud-stream"]
    finally:
        returncode = stream.stop() if stream.proc else None
        cluster.stop()
    assert returncode == 0, stream.log_tail()
    assert len(apps) == 1 and apps[0]["cores"] == 2, apps
    executors = sorted((cluster.work_dir / apps[0]["id"]).iterdir())  # the worker's folder of each executor
    assert executors and all((executor / "fraud-code.zip").exists() for executor in executors)
    assert any("Finished task" in (executor / "stderr").read_text(errors="replace") for executor in executors)
