"""A local Spark standalone cluster for the cluster-mode test: one master and one worker on 127.0.0.1 from the
pip-installed pyspark (``bin/spark-class``)."""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyspark

from fraud.stack.process import ManagedProcess

SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = str(SPARK_HOME / "bin" / "spark-class")
HOST = "127.0.0.1"
DAEMON_ENV = {"SPARK_LOCAL_IP": HOST, "SPARK_DAEMON_MEMORY": "256m"}  # on loopback, small heaps


@dataclass(frozen=True)
class StandaloneCluster:
    """One master and one worker; logs, pid files and the worker's work dir (executor logs) under ``home``."""

    home: Path
    master_port: int = 17077
    master_ui_port: int = 18080
    worker_ui_port: int = 18081
    worker_memory: str = "1g"
    worker_cores: int = 2

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    def state(self) -> dict:
        """The master's status page as JSON: workers, active and completed applications."""
        with urllib.request.urlopen(f"http://{HOST}:{self.master_ui_port}/json", timeout=5) as response:
            return json.load(response)

    def _processes(self) -> tuple[ManagedProcess, ManagedProcess]:
        master = ManagedProcess("spark-master", self.home, HOST, self.master_ui_port,
                                healthy=lambda: self.state()["status"] == "ALIVE",
                                hint="is Java 17 installed and the port free?")
        worker = ManagedProcess("spark-worker", self.home, HOST, self.worker_ui_port,
                                healthy=lambda: any(w["state"] == "ALIVE" for w in self.state()["workers"]),
                                hint=f"see the master's log {master.log_file}")
        return master, worker

    def start(self, timeout: float = 120) -> StandaloneCluster:
        master, worker = self._processes()
        master.start([SPARK_CLASS, "org.apache.spark.deploy.master.Master", "--host", HOST,
                      "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)], env=DAEMON_ENV)
        try:
            master.wait_healthy(timeout)
            worker.start([SPARK_CLASS, "org.apache.spark.deploy.worker.Worker", "--host", HOST,
                          "--webui-port", str(self.worker_ui_port), "--cores", str(self.worker_cores),
                          "--memory", self.worker_memory, "--work-dir", str(self.work_dir), self.master_url],
                         env=DAEMON_ENV)
            worker.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the worker (with its executors: one process group) and the master."""
        for process in reversed(self._processes()):
            process.stop(timeout=10)
