"""The streaming benchmark's pipeline: isolated on the test stack, the stream a real process, discarded after.

The isolation (own topics, MySQL database, Elasticsearch index, Delta folder and
checkpoints) and the stream process are the streaming tests' helpers
(``tests/streaming.py``), imported rather than copied. The benchmark adds what
only it needs: the result topic stamps records with the broker's append time, and
everything the run created is removed afterwards.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from fraud.config import PROJECT_ROOT, Settings
from fraud.stack.elasticsearch import elasticsearch_client
from fraud.stack.manager import stack_up
from fraud.stack.mariadb import admin_sql

sys.path.append(str(PROJECT_ROOT / "tests"))
from conftest import stack_settings  # noqa: E402  (tests/ holds the isolation helpers; see the module doc)
from streaming import StreamProcess, isolated_pipeline  # noqa: E402


def running_test_stack() -> Settings:
    """The test stack (ports 19092/19200/13306, state in .state/test-stack), started when it is not running."""
    return stack_up(stack_settings(), echo=lambda line: None)


@contextmanager
def isolated_stream(stack: Settings, work: Path, name: str, log: Path,
                    command: list[str] | None = None) -> Iterator[tuple[Settings, StreamProcess]]:
    """An isolated pipeline with ``fraud stream`` (all four sinks; or ``command``, python's arguments) running on
    it; afterwards the stream is killed unless the caller did (``stream.kill()``: its whole process group; nothing
    of the run is kept, so no clean stop is needed) and the pipeline removed."""
    settings, env = isolated_pipeline(stack, work, name)
    stream = StreamProcess(env, log, command=command)
    try:
        stamp_on_append(settings, settings.kafka.topics.scored)
        yield settings, stream.start()
    finally:
        if stream.proc is not None and stream.proc.poll() is None:  # not yet killed by the caller (nor exited)
            stream.kill()
        discard(settings)


def stamp_on_append(settings: Settings, topic: str) -> None:
    """Records of ``topic`` get the broker's append time as timestamp: the moment a record is on the topic."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient(settings.kafka.client_config())  # kept until the futures are done
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def discard(settings: Settings) -> None:
    """Delete the pipeline's topics, MySQL database and Elasticsearch index (the caller removes its folder)."""
    admin = AdminClient(settings.kafka.client_config())
    for future in admin.delete_topics(list(vars(settings.kafka.topics).values()), operation_timeout=30).values():
        future.result(60)
    admin_sql(settings, f"DROP DATABASE IF EXISTS `{settings.mysql.database}`")
    es, alias = elasticsearch_client(settings), settings.elasticsearch.index
    for index in es.indices.get_alias(name=alias):
        es.indices.delete(index=index)
    es.indices.delete_index_template(name=alias)
