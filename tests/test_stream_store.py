"""The state store: one SQLite file per shard, exactly once per micro-batch."""
from __future__ import annotations

import pytest

from fraud.stream.state import KeyUpdate
from fraud.stream.store import StateMismatchError, StateSize, shard_batch, shard_path, state_size


def _write(path, batch_id, values: dict[str, bytes], owner="query-1", shards=2):
    with shard_batch(path, owner, batch_id, shards) as store:
        before = store.get(list(values))
        store.put({key: KeyUpdate(value, newest_us=batch_id, records=len(value)) for key, value in values.items()})
    return before


def test_a_batch_sees_the_previous_batches_values_and_a_replay_sees_them_again(tmp_path):
    path = shard_path(tmp_path, "card", 0)
    assert _write(path, 0, {"a": b"a0", "b": b"b0"}) == {}
    assert _write(path, 1, {"a": b"a1", "c": b"c1"}) == {"a": b"a0"}
    # batch 1 again (the query restarted before Spark recorded it): it finds the state from before batch 1
    assert _write(path, 1, {"a": b"a1", "c": b"c1"}) == {"a": b"a0"}
    assert _write(path, 2, {"a": b"a2", "b": b"b2", "c": b"c2"}) == {"a": b"a1", "b": b"b0", "c": b"c1"}
    assert state_size(tmp_path) == StateSize(keys=3, records=6, bytes=6)


def test_a_replay_puts_back_keys_the_batch_created_and_removed(tmp_path):
    path = shard_path(tmp_path, "card", 0)
    _write(path, 0, {"old": b"x"})

    def batch_one() -> dict[str, bytes]:
        with shard_batch(path, "query-1", 1, 2) as store:
            found = store.get(["new", "old"])
            store.put({"new": KeyUpdate(b"n", newest_us=10**9, records=1)})
            assert store.expire(older_than_us=5) == 1  # "old" (newest 0) is idle past the look-back
        return found

    assert batch_one() == {"old": b"x"}
    assert state_size(tmp_path) == StateSize(keys=1, records=1, bytes=1)
    assert batch_one() == {"old": b"x"}  # the replay finds "old" back and "new" gone, as before batch 1
    assert state_size(tmp_path) == StateSize(keys=1, records=1, bytes=1)
    with shard_batch(path, "query-1", 2, 2) as store:
        assert store.get(["old", "new"]) == {"new": b"n"}


def test_a_replay_forgets_the_ids_the_batch_decided_and_remembers_those_it_forgot(tmp_path):
    path = shard_path(tmp_path, "card", 0)
    with shard_batch(path, "query-1", 0, 2) as store:
        store.decide([1, 2], [10, 20], 0)

    def batch_one() -> dict[int, int]:
        with shard_batch(path, "query-1", 1, 2) as store:
            found = store.decided([1, 2, 3])
            store.decide([3], [30], 1)
            assert store.forget_decided(older_than_us=15) == 1  # id 1
        return found

    assert batch_one() == {1: 10, 2: 20}
    assert batch_one() == {1: 10, 2: 20}  # replayed: 1 back, 3 not yet decided
    with shard_batch(path, "query-1", 2, 2) as store:
        assert store.decided([1, 2, 3]) == {2: 20, 3: 30}


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    path = shard_path(tmp_path, "terminal", 1)
    _write(path, 0, {"a": b"a0"})
    with pytest.raises(ZeroDivisionError):
        with shard_batch(path, "query-1", 1, 2) as store:
            store.get(["a"])
            store.put({"a": KeyUpdate(b"broken", 1, 1)})
            1 / 0  # noqa: B018  (the batch fails)
    assert _write(path, 1, {"a": b"a1"}) == {"a": b"a0"}


@pytest.mark.parametrize("owner, batch_id, shards, message", [
    ("query-2", 5, 2, "holds the state of query query-1"),
    ("query-1", 2, 2, "already holds micro-batch 3"),
    ("query-1", 5, 4, "state of 2 shards per route"),
])
def test_a_store_that_does_not_go_with_the_checkpoint_is_refused(tmp_path, owner, batch_id, shards, message):
    path = shard_path(tmp_path, "card", 0)
    _write(path, 3, {"a": b"a"})
    with pytest.raises(StateMismatchError, match=message):
        with shard_batch(path, owner, batch_id, shards):
            pass


def test_a_warm_started_store_is_adopted_by_the_first_query(tmp_path):
    path = shard_path(tmp_path, "card", 0)
    _write(path, -1, {"a": b"seed"}, owner=None)
    assert _write(path, 0, {"a": b"a0"}, owner="query-7") == {"a": b"seed"}
    with pytest.raises(StateMismatchError):
        _write(path, 1, {}, owner="query-8")
