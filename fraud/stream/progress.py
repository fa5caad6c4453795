"""Pipeline health: every micro-batch of the stream's queries as a row of MySQL ``stream_progress``.

The dashboard reads it (batch duration, records/s, consumer lag) without talking
to Spark. Reporting is best effort: a failed insert is logged, never raised, since
monitoring must not stop scoring.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

from pyspark.sql.streaming import StreamingQueryListener

from fraud.config import Settings
from fraud.stack.mariadb import connect

log = logging.getLogger(__name__)


def offsets_behind(latest: str | None, end: str | None) -> int | None:
    """Records the source had not read at the end of the batch: sum over topic partitions of latest − end offset
    (Spark's Kafka source progress gives both as JSON ``{"topic": {"0": offset, ...}}``)."""
    if not latest or not end:
        return None
    latest_offsets, end_offsets = json.loads(latest), json.loads(end)
    return sum(max(0, offset - end_offsets.get(topic, {}).get(partition, 0))
               for topic, partitions in latest_offsets.items() for partition, offset in partitions.items())


def progress_row(progress) -> tuple:
    """(query_name, batch_id, reported_at, input_rows, input/s, processed/s, duration_ms, offsets_behind)."""
    behind = [offsets_behind(source.latestOffset, source.endOffset) for source in progress.sources]
    known = [b for b in behind if b is not None]
    return (progress.name, progress.batchId,
            datetime.fromisoformat(progress.timestamp.replace("Z", "+00:00")).replace(tzinfo=None),
            progress.numInputRows, _finite(progress.inputRowsPerSecond), _finite(progress.processedRowsPerSecond),
            int(progress.durationMs.get("triggerExecution", 0)), sum(known) if known else None)


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None


class ProgressToMysql(StreamingQueryListener):
    """Upserts each query progress event into ``stream_progress`` (a redone batch overwrites its row)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        try:
            row = progress_row(event.progress)
            with connect(self.settings) as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO stream_progress (query_name, batch_id, reported_at, input_rows, "
                    "input_rows_per_second, processed_rows_per_second, duration_ms, offsets_behind) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE reported_at = VALUES(reported_at), "
                    "input_rows = VALUES(input_rows), input_rows_per_second = VALUES(input_rows_per_second), "
                    "processed_rows_per_second = VALUES(processed_rows_per_second), "
                    "duration_ms = VALUES(duration_ms), offsets_behind = VALUES(offsets_behind)", row)
        except Exception as exc:  # noqa: BLE001 - monitoring must never stop the stream
            log.warning("stream progress not recorded: %s", str(exc).splitlines()[0] if str(exc) else exc)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass
