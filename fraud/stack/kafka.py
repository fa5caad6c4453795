"""Kafka 4.x, single node in KRaft mode, from the Maven Central jars in .jars/kafka."""
from __future__ import annotations

import base64
import subprocess
import uuid
from string import Template

from confluent_kafka.admin import AdminClient

from fraud.config import CONF_DIR, KafkaConf, Settings
from fraud.jvm import classpath, java_executable
from fraud.stack.process import ManagedProcess, ServiceError


def kafka_process(settings: Settings) -> ManagedProcess:
    conf = settings.kafka
    return ManagedProcess(
        name="kafka", home=settings.state_dir / "kafka", host=conf.host, port=conf.port,
        healthy=lambda: broker_ready(conf),
        hint="check that kafka.port / kafka.controller_port are free and the jars exist (`make jars`)")


def broker_ready(conf: KafkaConf, timeout: float = 2.0) -> bool:
    metadata = AdminClient({"bootstrap.servers": conf.bootstrap_servers}).list_topics(timeout=timeout)
    return bool(metadata.brokers)


def start_kafka(settings: Settings, process: ManagedProcess) -> None:
    """Start the broker (KRaft, formatted on first start). Raises ServiceError when formatting fails or the port is
    taken."""
    conf = settings.kafka
    data_dir = process.home / "data"
    properties = process.home / "server.properties"
    properties.parent.mkdir(parents=True, exist_ok=True)
    properties.write_text(Template((CONF_DIR / "kafka" / "server.properties").read_text()).substitute(
        host=conf.host, port=conf.port, controller_port=conf.controller_port,
        data_dir=data_dir, partitions=conf.partitions))
    java = [java_executable(), "-cp", classpath("kafka"),
            f"-Dlog4j2.configurationFile={CONF_DIR / 'kafka' / 'log4j2.yaml'}"]
    if not (data_dir / "meta.properties").exists():
        # First start: format the KRaft metadata log (a no-op would fail on a formatted dir).
        fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", "--standalone",
                              f"--cluster-id={_cluster_id()}", "-c", str(properties)],
                             capture_output=True, text=True)
        if fmt.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
    process.start([*java, f"-Xms{min(conf.heap_mb, 256)}m", f"-Xmx{conf.heap_mb}m", "-XX:+UseG1GC",
                   "kafka.Kafka", str(properties)])


def _cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes, URL-safe base64 without padding; one may start with "-", which is why
    # the caller passes it as --cluster-id=ID (as a separate argument argparse would take it for an option).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
