"""The streaming scorer: Kafka in; decisions on the result topic in about a second; every sink fed behind it.

- ``queries``: the two Structured Streaming queries (decision, delivery), start / run / stop.
- ``decisions``: the decision query's micro-batch: validate, card and terminal state, score, publish.
- ``state``: one shard's micro-batch of card or terminal state, without Spark.
- ``store``: the state on disk, one SQLite file per shard, exactly once per micro-batch.
- ``serving``: which model scores a micro-batch (hot reload, pinned for replays).
- ``delivery``: the delivery query: MySQL, Elasticsearch, Delta, exactly once.
- ``warm_start``: seeding the state from history.
- ``progress``: every micro-batch to MySQL ``stream_progress``.
"""
from __future__ import annotations

import signal
import threading


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM (a service manager, ``kill``): the stream stops between micro-batches
    instead of being interrupted inside a call to the JVM. Installed before anything heavy is imported, so a stop
    during start-up is a clean stop too."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
