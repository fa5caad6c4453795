"""The streaming benchmark's pipeline: isolated on the test stack, the stream a real process, discarded after.

The isolation (own topics, MySQL database, Elasticsearch index, Delta folder and
checkpoints, removed afterwards) and the stream process are the streaming tests'
(``fraud.testing.pipeline``). The benchmark adds what only it needs: the result
topic stamps records with the broker's append time.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from fraud.clients.kafka import kafka_admin
from fraud.config import Settings
from fraud.testing.pipeline import StreamProcess, isolated_pipeline


@contextmanager
def isolated_stream(stack: Settings, work: Path, name: str, log: Path,
                    command: list[str] | None = None) -> Iterator[tuple[Settings, StreamProcess]]:
    """An isolated pipeline with ``fraud stream`` (all four sinks; or ``command``, python's arguments) running on
    it; afterwards the stream is killed unless the caller did (``stream.kill()``: its whole process group; nothing
    of the run is kept, so no clean stop is needed) and the pipeline removed."""
    with isolated_pipeline(stack, work, name) as (settings, env):
        stream = StreamProcess(env, log, command=command)
        try:
            stamp_on_append(settings, settings.kafka.topics.scored)
            yield settings, stream.start()
        finally:
            if stream.proc is not None and stream.proc.poll() is None:  # not yet killed by the caller (nor exited)
                stream.kill()


def stamp_on_append(settings: Settings, topic: str) -> None:
    """Records of ``topic`` get the broker's append time as timestamp: the moment a record is on the topic."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    admin = kafka_admin(settings)  # kept until the futures are done
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
