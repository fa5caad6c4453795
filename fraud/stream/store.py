"""The decision query's state on disk: one SQLite file per route and shard, versioned by micro-batch.

Each file maps a key (card or terminal id as text) to its encoded history
(``fraud.stream.state``) and the newest event time in it. A micro-batch of a shard
is one SQLite transaction: read the touched keys, write their new values, drop
the keys idle for longer than the look-back, record the batch id. Only the keys a
batch touches are read or written.

A card shard also keeps the ids (64-bit hashes) of the transactions it decided,
with their event times, for ``stream.duplicate_days`` of event time: a transaction
sent again, however late, is not decided twice (``fraud.stream.decisions``).

Exactly once. Before a batch overwrites a key it saves the key's previous value
in an undo table, kept until the next batch. If the same batch id comes again (the
query restarted after a crash, between this commit and Spark's; or a task was
retried), the undo table puts every key back as it was before the batch (and the
ids it decided are forgotten, those it forgot restored), so the
batch computes the same features again from the same state. A batch id below the
recorded one means the checkpoint is not the one this state went with (deleted,
replaced, restored from a backup): ``StateMismatchError``, never a silent mix.

SQLite in WAL mode with ``synchronous=NORMAL`` survives a killed process (kill -9)
without losing a committed batch. One task writes a shard at a time; on a cluster
the folder must be on storage every executor reaches (a shared volume), as the
checkpoint is.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, overload

from fraud.stream.state import KeyUpdate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, newest INTEGER NOT NULL, records INTEGER NOT NULL,
                                  value BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_by_newest ON state (newest);
CREATE TABLE IF NOT EXISTS undo (key TEXT PRIMARY KEY, newest INTEGER, records INTEGER, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decided (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, batch INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS decided_by_time ON decided (time);
CREATE TABLE IF NOT EXISTS decided_expired (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, batch INTEGER NOT NULL);
"""
_STATS = ("keys", "records", "bytes")
_CHUNK = 900  # keys per SELECT ... IN (...)


class StateMismatchError(RuntimeError):
    """The state store and the checkpoint do not belong together."""


@dataclass(frozen=True)
class StateSize:
    """A shard's (or the whole state's) size: keys, history records, bytes of encoded histories."""
    keys: int = 0
    records: int = 0
    bytes: int = 0

    def __add__(self, other: "StateSize") -> "StateSize":
        return StateSize(self.keys + other.keys, self.records + other.records, self.bytes + other.bytes)


def shard_path(folder: Path, route: str, shard: int) -> Path:
    return folder / f"{route}-{shard:04d}.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


class ShardBatch:
    """One micro-batch's access to one shard (inside its SQLite transaction)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._read: dict[str, tuple[int, int, bytes]] = {}

    def get(self, keys: list[str]) -> dict[str, bytes]:
        """The stored values of ``keys`` (absent keys are left out)."""
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            rows = self.conn.execute(f"SELECT key, newest, records, value FROM state WHERE key IN "
                                     f"({','.join('?' * len(chunk))})", chunk)
            self._read.update({key: (newest, records, value) for key, newest, records, value in rows})
        return {key: self._read[key][2] for key in keys if key in self._read}

    def put(self, updates: Mapping[str, KeyUpdate]) -> None:
        """Write the new values of keys read by ``get`` (their previous values go to the undo table)."""
        before = [(key, *self._read.get(key, (None, None, None))) for key in updates]
        self.conn.executemany("INSERT OR IGNORE INTO undo (key, newest, records, value) VALUES (?, ?, ?, ?)", before)
        self.conn.executemany("INSERT OR REPLACE INTO state (key, newest, records, value) VALUES (?, ?, ?, ?)",
                              [(key, u.newest_us, u.records, u.blob) for key, u in updates.items()])
        size = _size(self.conn)
        removed = sum((StateSize(1, records, len(value)) for _, (_, records, value) in
                       ((k, self._read[k]) for k in updates if k in self._read)), StateSize())
        added = StateSize(len(updates), sum(u.records for u in updates.values()),
                          sum(len(u.blob) for u in updates.values()))
        _set_size(self.conn, StateSize(size.keys + added.keys - removed.keys, size.records + added.records
                                       - removed.records, size.bytes + added.bytes - removed.bytes))

    def expire(self, older_than_us: int) -> int:
        """Remove the keys whose newest event is before ``older_than_us`` (idle past the look-back); returns how
        many (saved in the undo table like any other change)."""
        keys, records, size = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(records), 0), COALESCE(SUM(LENGTH(value)), 0) FROM state WHERE newest < ?",
            (older_than_us,)).fetchone()
        if keys:
            self.conn.execute("INSERT OR IGNORE INTO undo SELECT key, newest, records, value FROM state "
                              "WHERE newest < ?", (older_than_us,))
            self.conn.execute("DELETE FROM state WHERE newest < ?", (older_than_us,))
            now = _size(self.conn)
            _set_size(self.conn, StateSize(now.keys - keys, now.records - records, now.bytes - size))
        return keys

    def decided(self, ids: list[int]) -> dict[int, int]:
        """Of the transaction ``ids`` (64-bit id hashes), those decided in an earlier micro-batch: id -> event time
        (µs)."""
        found: dict[int, int] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            found.update(self.conn.execute(f"SELECT id, time FROM decided WHERE id IN ({','.join('?' * len(chunk))})",
                                           chunk).fetchall())
        return found

    def decide(self, ids: list[int], times: list[int], batch_id: int) -> None:
        """Record the transactions this micro-batch decided (id hash, event time in µs); a replay of the batch
        forgets them again (``shard_batch``)."""
        self.conn.executemany("INSERT OR IGNORE INTO decided VALUES (?, ?, ?)",
                              ((i, t, batch_id) for i, t in zip(ids, times)))

    def forget_decided(self, older_than_us: int) -> int:
        """Forget the decided transactions with an event time before ``older_than_us`` (kept until the
        next micro-batch, for a replay); returns how many."""
        kept = self.conn.execute("INSERT OR IGNORE INTO decided_expired SELECT * FROM decided WHERE time < ?",
                                 (older_than_us,)).rowcount
        if kept:
            self.conn.execute("DELETE FROM decided WHERE time < ?", (older_than_us,))
        return kept

    @overload
    def newest_seen(self, event_us: int) -> int: ...

    @overload
    def newest_seen(self, event_us: int | None = None) -> int | None: ...

    def newest_seen(self, event_us: int | None = None) -> int | None:
        """The newest event time the shard has seen, raised to ``event_us`` when given."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'newest_event_us'").fetchone()
        newest = row[0] if row else None
        if event_us is not None and (newest is None or event_us > newest):
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('newest_event_us', ?)", (event_us,))
            newest = event_us
        return newest


def _size(conn: sqlite3.Connection) -> StateSize:
    values = dict(conn.execute(f"SELECT name, value FROM meta WHERE name IN {tuple(_STATS)}").fetchall())
    return StateSize(*(int(values.get(name, 0)) for name in _STATS))


def _set_size(conn: sqlite3.Connection, size: StateSize) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", zip(_STATS, (size.keys, size.records, size.bytes)))


def _meta(conn: sqlite3.Connection, name: str):
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


@contextmanager
def shard_batch(path: Path, owner: str | None, batch_id: int, shards: int) -> Iterator[ShardBatch]:
    """Open ``path`` for micro-batch ``batch_id`` of the query ``owner`` (its checkpoint's query id; None for a warm
    start, which any query then adopts) in a state of ``shards`` shards per route; committed when the block ends,
    rolled back if it raises.

    Raises StateMismatchError when the store was written by another query, by a later batch than ``batch_id``
    (the checkpoint went back or was replaced), or with another number of shards.
    """
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        recorded_owner, last, recorded_shards = _meta(conn, "owner"), _meta(conn, "batch_id"), _meta(conn, "shards")
        if recorded_shards not in (None, shards):
            raise StateMismatchError(f"{path} belongs to a state of {recorded_shards} shards per route, but "
                                     f"stream.state_shards is {shards}: a key would be looked for in the wrong "
                                     f"shard. Set stream.state_shards back to {recorded_shards}, or remove the "
                                     f"state folder {path.parent} (and warm-start it from history).")
        if recorded_owner not in (None, owner) and owner is not None:
            raise StateMismatchError(f"{path} holds the state of query {recorded_owner}, not of this checkpoint's "
                                     f"query {owner}: the checkpoint was replaced. Remove the state folder "
                                     f"{path.parent} to start afresh (warm-start it from history), or restore "
                                     f"the checkpoint it belongs to.")
        if last is not None and last > batch_id:
            raise StateMismatchError(f"{path} already holds micro-batch {last}, but the checkpoint is at batch "
                                     f"{batch_id}: the checkpoint went back in time. Restore the newer checkpoint, "
                                     f"or remove the state folder {path.parent} to start afresh.")
        if last == batch_id:  # the same batch again: back to the state before it
            for key, newest, records, value in conn.execute("SELECT key, newest, records, value FROM undo").fetchall():
                if value is None:
                    conn.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (key, newest, records, value))
            before = _meta(conn, "size_before")
            if before is not None:
                _set_size(conn, StateSize(*(int(v) for v in str(before).split(","))))
            conn.execute("DELETE FROM decided WHERE batch = ?", (batch_id,))
            conn.execute("INSERT OR IGNORE INTO decided SELECT * FROM decided_expired")
        conn.execute("DELETE FROM undo")
        conn.execute("DELETE FROM decided_expired")
        size = _size(conn)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('size_before', ?)",
                     (f"{size.keys},{size.records},{size.bytes}",))
        yield ShardBatch(conn)
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         [("owner", owner or recorded_owner), ("batch_id", batch_id), ("shards", shards)])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def state_size(folder: Path) -> StateSize:
    """The size of every shard under ``folder``, summed (reads only each file's counters)."""
    total = StateSize()
    for path in sorted(folder.glob("*.sqlite")):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            total = total + _size(conn)
        except sqlite3.OperationalError:  # a shard created but not yet written
            pass
        finally:
            conn.close()
    return total
