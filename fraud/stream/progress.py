"""Pipeline health: every micro-batch of the stream's queries as a row of MySQL ``stream_progress``.

The dashboard reads it (batch duration, records/s, consumer lag, the size of the
decision query's state) without talking to Spark. Reporting is best effort: a
failed insert is logged, never raised, since monitoring must not stop scoring.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from pyspark.sql.streaming import StreamingQueryListener

from fraud.clients.mysql import connect
from fraud.config import Settings
from fraud.stream.store import StateSize, state_size

log = logging.getLogger(__name__)


def offsets_behind(latest: str | None, end: str | None) -> int | None:
    """Records the source had not read at the end of the batch: sum over topic partitions of latest − end offset
    (Spark's Kafka source progress gives both as JSON ``{"topic": {"0": offset, ...}}``)."""
    if latest is None or end is None:  # none yet
        return None
    try:
        latest_offsets, end_offsets = json.loads(latest), json.loads(end)
    except (TypeError, ValueError):  # not a Kafka source's offsets (another source)
        return None
    if not isinstance(latest_offsets, dict) or not isinstance(end_offsets, dict):
        return None
    return sum(max(0, offset - end_offsets.get(topic, {}).get(partition, 0))
               for topic, partitions in latest_offsets.items() for partition, offset in partitions.items())


COLUMNS = ["query_name", "batch_id", "reported_at", "input_rows", "input_rows_per_second",
           "processed_rows_per_second", "duration_ms", "offsets_behind", "state_keys", "state_records", "state_bytes"]


def progress_row(progress, state: StateSize | None = None) -> tuple:
    """COLUMNS of one progress event; ``state``: the query's state size after the batch (None: no state)."""
    behind = [offsets_behind(source.latestOffset, source.endOffset) for source in progress.sources]
    known = [b for b in behind if b is not None]
    return (progress.name, progress.batchId,
            datetime.fromisoformat(progress.timestamp.replace("Z", "+00:00")).replace(tzinfo=None),
            progress.numInputRows, _finite(progress.inputRowsPerSecond), _finite(progress.processedRowsPerSecond),
            int(progress.durationMs.get("triggerExecution", 0)), sum(known) if known else None,
            *((state.keys, state.records, state.bytes) if state else (None, None, None)))


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None


class ProgressToMysql(StreamingQueryListener):
    """Upserts each query progress event into ``stream_progress`` (a redone batch overwrites its row).

    ``state_folders``: query name -> its state store folder, whose size goes with each of its rows.
    """

    def __init__(self, settings: Settings, state_folders: dict[str, Path]):
        self.settings, self.state_folders = settings, state_folders

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        if progress.numInputRows:
            log.info("%s batch %d: %d records in %.2fs (%s)", progress.name, progress.batchId, progress.numInputRows,
                     progress.durationMs.get("triggerExecution", 0) / 1000,
                     ", ".join(f"{name} {ms / 1000:.2f}s" for name, ms in progress.durationMs.items()
                               if name != "triggerExecution" and ms >= 10))
        try:
            folder = self.state_folders.get(event.progress.name)
            row = progress_row(event.progress, state_size(folder) if folder else None)
            updates = ", ".join(f"{c} = VALUES({c})" for c in COLUMNS[2:])
            with connect(self.settings) as conn, conn.cursor() as cur:
                cur.execute(f"INSERT INTO stream_progress ({', '.join(COLUMNS)}) "
                            f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
                            f"ON DUPLICATE KEY UPDATE {updates}", row)
        except Exception as exc:  # noqa: BLE001 - monitoring must never stop the stream
            log.warning("stream progress not recorded: %s", str(exc).splitlines()[0] if str(exc) else exc)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass
