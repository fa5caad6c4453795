"""Streaming: the stream, the floor this machine allows, and the state over a month, everything on these two cores.

Each run gets a fresh isolated pipeline (``bench.pipeline``) and its own process
(``fraud stream``, or a floor query of ``bench.floor``). ``priming`` transactions
are scored first (the JVM, the Python workers and the model are warm); then the
dataset is replayed (``fraud.producer``, in this process; the simulator continues
when the dataset runs out) at the run's rate for ``warmup_s + seconds``; the
stream gets up to ``tail_s`` more; then it is killed and the topics read.

- Latency of a transaction: the result record's timestamp (the scored topic stamps
  records with the broker's append time) minus the raw record's (the producer's send
  time). Percentiles over the transactions sent after the warm-up; one still
  unscored when the run ends counts with the time it has waited so far, and a
  percentile those reach is a lower bound (">=").
- Lag: sent minus scored (end offsets, every second). Scored rate: scored between
  the end of the warm-up and the producer's stop, over that time. The lag is
  bounded when the scored rate is at least 95% of the rate sent.
- Sinks (runs with every sink): how long after its send a transaction is in MySQL,
  Elasticsearch and Delta, from their counts sampled every half second (MySQL
  ``COUNT(*)``, Elasticsearch ``_count``, the records of Delta's commit log): the
  i-th transaction sent is counted in when the sink first holds i; an estimate
  that assumes the sinks take transactions in the order sent.
- Floors (``bench.floor``): the same measure for a stateless query (Kafka -> JSON ->
  the model's pandas UDF -> Kafka) and the naive stateful one (with a per-card
  ``applyInPandasWithState`` counter), at the same rate, on the same cores.
- Prototypes (``bench.prototypes``): the decision query's alternative layouts (one
  stage with the state partitioned as the raw topic; the state in the driver), the
  same measure at the floors' rate, decisions only, beside the product's decision
  query alone (``--sinks kafka``) at that rate.
- Sustained: 5 minutes of the decision path alone (``--sinks kafka``) at
  SUSTAIN_TARGETS' rate, and of every sink at its rate.
- Month: ``replay_days`` of the dataset at ``replay_rate`` into one stream with every
  sink; each decision micro-batch's duration and the state's size (keys, records,
  bytes: MySQL ``stream_progress``), and the resident memory of the stream's
  processes (its JVMs and Python workers) every second. Then the order's effect: the
  raw topic has several partitions, so a terminal's transactions (and the labels)
  arrive in another order than their event times; each decision's features and score
  are compared with the batch features of the same transactions (``fraud.features_pandas``,
  equal to the backfill's) scored by the same model: how many rows differ, in which
  features, and the average precision of both against the dataset's labels.
"""
from __future__ import annotations

import itertools
import math
import shutil
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, TypedDict

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from bench import plots
from bench.pipeline import isolated_stream
from bench.report import Outcome, Row, rate
from bench.topics import OffsetSampler, record_times_ms, scored_features, scored_times_ms
from fraud.clients.elasticsearch import SCORED, elasticsearch_client
from fraud.clients.mysql import connect
from fraud.config import Settings
from fraud.data import dataset_path
from fraud.features import EXTRA_FEATURES, HANDBOOK_FEATURES
from fraud.features_pandas import add_all_features_pandas
from fraud.process import resident_memory_mb
from fraud.producer import Pace, load_history, replay
from fraud.simulator import Simulator
from fraud.stream.serving import newest_model
from fraud.testing.pipeline import StreamProcess
from fraud.testing.stack import running_test_stack
from training.artifacts import load_model
from udfs.scoring import score_features


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]  # every sink, one run each
    warmup_s: float         # sent at the run's rate, left out of the latency figures
    seconds: float          # each run, after the warm-up
    tail_s: float           # longest wait for the last transactions after the producer stops
    priming: int            # transactions scored before a run starts
    floor_rate: int         # the floors run at this rate (one of ``rates``, whose sinks are measured too)
    sustain_s: float        # the sustained runs
    replay_days: int        # the month
    replay_rate: int
    start_patience_s: float = 300.0


FULL = Plan(rates=(500, 2_000), warmup_s=30, seconds=40, tail_s=30, priming=1_000, floor_rate=2_000,
            sustain_s=300, replay_days=30, replay_rate=2_000)
QUICK = Plan(rates=(500, 2_000), warmup_s=15, seconds=20, tail_s=20, priming=300, floor_rate=2_000,
             sustain_s=40, replay_days=3, replay_rate=2_000)
LATENCY_TARGETS = {500: {"p50": 0.7}, 2_000: {"p50": 1.0, "p99": 2.5}}  # seconds, at that input rate
SINK_TARGET_P99_S = 10.0
FLOOR_RATIO_TARGET = 2.0
SUSTAIN_TARGETS = {"decisions": 10_000, "stream": 5_000}  # events/s with bounded lag over sustain_s
MONTH_GROWTH_TARGET = 1.5  # day-30 micro-batches over day-1 ones
MEMORY_TARGET_GB = 3.0
WARM_START_WEEK = "2018-08-01"  # the dataset's test period starts here (the handbook's protocol)
TOLERANCE = 0.05  # the lag is bounded when the scored rate is at least 95% of the input rate
PERCENTILES = (50, 95, 99)
SINKS = ("mysql", "elasticsearch", "delta")
KINDS = {  # what runs: python's arguments, and the checkpoint whose micro-batches are counted
    "stream": (["-m", "fraud.cli", "stream", "--model", "models/default"], "decision"),
    "decisions": (["-m", "fraud.cli", "stream", "--model", "models/default", "--sinks", "kafka"], "decision"),
    "stateless": (["-m", "bench.floor", "stateless"], "floor-stateless"),
    "stateful": (["-m", "bench.floor", "stateful"], "floor-stateful"),
    "single-stage": (["-m", "bench.prototypes", "single-stage"], "prototype-single-stage"),
    "driver-state": (["-m", "bench.prototypes", "driver-state"], "prototype-driver-state"),
}
PROTOTYPES = ("single-stage", "driver-state")


@dataclass
class Step:
    """One run at a fixed input rate: the summary for results.json and the series the plots draw."""
    kind: str
    phase: str
    rate: int
    summary: dict = field(default_factory=dict)
    latency: pd.DataFrame | None = None  # sent_s (since the run's start), latency_s
    lag: pd.DataFrame | None = None      # t_s, sent, scored, lag


def transactions(history: pd.DataFrame) -> Iterator:
    """The dataset in event-time order, then the simulator's endless stream after it."""
    yield from history.itertuples(index=False)
    last = history.iloc[-1]
    yield from Simulator(start=(last.TX_DATETIME + pd.Timedelta(days=1)).normalize().to_pydatetime(),
                         first_id=int(history.TRANSACTION_ID.max()) + 1).transactions()


def until(rows: Iterable, deadline: float) -> Iterator:
    for row in rows:
        if time.monotonic() >= deadline:
            return
        yield row


def percentiles(values: np.ndarray, waited: np.ndarray | None = None) -> dict:
    """p50/p95/p99 (seconds) of ``values``, with ``waited`` (transactions not there yet, counted with their wait so
    far): a percentile they reach is a lower bound."""
    waited = np.zeros(0) if waited is None else waited
    every = np.concatenate([values, waited])
    summary: dict[str, float | None] = {"count": len(values), "missing": len(waited)}
    for q in PERCENTILES:
        value = float(np.percentile(every, q)) if len(every) else None
        bound = len(waited) > 0 and value is not None and (len(waited) > (1 - q / 100) * len(every)
                                                           or waited.min() < value)
        summary[f"p{q}"] = None if value is None else round(value, 3)
        summary[f"p{q}_lower_bound"] = bool(bound)
    return summary


def latency_summary(sent_ms: np.ndarray, scored: pd.DataFrame, window: tuple[float, float],
                    observed_until: float) -> dict:
    """Percentiles (seconds) over the transactions sent within ``window`` (epoch seconds); the unscored ones count
    with their wait so far."""
    low, high = (int(bound * 1000) for bound in window)
    sent = sent_ms[(sent_ms >= low) & (sent_ms < high)]
    done = scored[(scored.sent_ms >= low) & (scored.sent_ms < high)]
    measured = ((done.scored_ms - done.sent_ms) / 1000).to_numpy()
    unscored = np.fromiter((Counter(sent.tolist()) - Counter(done.sent_ms.tolist())).elements(), dtype=np.int64)
    summary = percentiles(measured, (observed_until * 1000 - unscored) / 1000)
    summary.update(sent=len(sent), scored=len(measured), unscored=len(unscored),
                   max_scored=round(float(measured.max()), 3) if len(measured) else None)
    return summary


def scored_rate(lag: pd.DataFrame, since_s: float, until_s: float = math.inf) -> float | None:
    """Transactions scored per second over [``since_s``, ``until_s``]: the scored count at the window's last
    sample minus at its first, over the time between; None with fewer than two samples."""
    window = lag[(lag.t_s >= since_s) & (lag.t_s <= until_s)]
    if len(window) < 2:
        return None
    first, last = window.iloc[0], window.iloc[-1]
    return float((last.scored - first.scored) / (last.t_s - first.t_s))


def micro_batches(checkpoint: Path, since: float, until_: float) -> dict:
    """Durations of the query's micro-batches started after ``since`` (epoch s), from its checkpoint: the offsets
    file is written when a batch starts, the commit file when it ends."""
    durations, running = [], None
    for offsets in (checkpoint / "offsets").glob("[0-9]*"):
        started = offsets.stat().st_mtime
        commit = checkpoint / "commits" / offsets.name
        if started < since:
            continue
        if commit.exists():
            durations.append(commit.stat().st_mtime - started)
        else:
            running = until_ - started
    return {"count": len(durations), "median_s": round(float(np.median(durations)), 2) if durations else None,
            "max_s": round(max(durations), 2) if durations else None,
            "unfinished_at_end_s": None if running is None else round(running, 1)}


class SinkCounter(threading.Thread):
    """Every half second: (epoch seconds, MySQL rows, Elasticsearch scored documents, Delta records) of a
    pipeline's scored transactions. Stop it with ``halt()``."""

    def __init__(self, settings: Settings, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.settings, self.every_s = settings, every_s
        self.samples: list[tuple[float, int, int, int]] = []
        self._halt = threading.Event()

    def _delta_records(self) -> int:
        total = 0
        for commit in sorted((Path(self.settings.scored_table) / "_delta_log").glob("*.json")):
            for line in commit.read_text().splitlines():
                if '"add"' in line and '\\"numRecords\\":' in line:
                    total += int(line.split('\\"numRecords\\":')[1].split(",")[0])
        return total

    def run(self) -> None:
        es = elasticsearch_client(self.settings)
        while not self._halt.is_set():
            now = time.time()
            try:
                with connect(self.settings) as conn, conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM scored_transactions")
                    mysql = cur.fetchone()[0]
                documents = es.count(index=self.settings.elasticsearch.index, query=SCORED)["count"]
                self.samples.append((now, mysql, documents, self._delta_records()))
            except Exception:  # noqa: BLE001 - a sink restarting: that sample is missing, the next one counts
                pass
            self._halt.wait(max(0.0, now + self.every_s - time.time()))

    def halt(self) -> pd.DataFrame:
        self._halt.set()
        self.join(30)
        return pd.DataFrame(self.samples, columns=["t", *SINKS])


def sink_latency(sent_ms: np.ndarray, counts: pd.DataFrame, window: tuple[float, float],
                 observed_until: float) -> dict:
    """Per sink, percentiles of (time the sink first held i transactions) - (send time of the i-th sent), over the
    transactions sent within ``window``; those never reached count with their wait so far."""
    sent = np.sort(sent_ms) / 1000
    in_window = (sent >= window[0]) & (sent < window[1])
    out = {}
    for sink in SINKS:
        if counts.empty:
            out[sink] = percentiles(np.zeros(0))
            continue
        held = np.maximum.accumulate(counts[sink].to_numpy())
        first = np.searchsorted(held, np.arange(1, len(sent) + 1), side="left")  # first sample holding i
        reached = first < len(held)
        stored_at = np.where(reached, counts.t.to_numpy()[np.minimum(first, len(held) - 1)], np.nan)
        mine = in_window & reached
        out[sink] = percentiles(stored_at[mine] - sent[mine], observed_until - sent[in_window & ~reached])
    return out


def drain(stream, sampler: OffsetSampler, tail_s: float, began: float) -> None:
    """Wait until every transaction sent is scored, at most ``tail_s``; not at all when the backlog is more than
    four times what the stream can score in that time at the pace it showed since ``began``."""
    deadline = time.monotonic() + tail_s
    samples = pd.DataFrame(sampler.samples, columns=["t", "sent", "scored"])
    pace = scored_rate(samples.assign(t_s=samples.t - began), 0.0)
    backlog = samples.sent.iloc[-1] - samples.scored.iloc[-1]
    if pace is not None and backlog > 4 * tail_s * pace:
        return
    while time.monotonic() < deadline and stream.proc.poll() is None:
        latest = sampler.latest()
        assert latest is not None  # sampled since the priming
        _, sent, scored = latest
        if scored >= sent:
            return
        time.sleep(1)


class Watcher(Protocol):
    def halt(self) -> object: ...


def run_step(stack: Settings, folder: Path, work: Path, plan: Plan, rows: Iterator, kind: str, phase: str,
             rate_: int, seconds: float, watch: Callable[[Settings, StreamProcess], Watcher] | None = None) -> Step:
    """One run of ``kind`` (KINDS) at ``rate_`` for ``seconds`` after the warm-up. ``watch(settings, stream)``
    starts a thread sampling what else the caller wants (halted with ``halt()``, its result in ``watched``)."""
    name = f"{kind}-{phase}-{rate_}"
    step = Step(kind, phase, rate_)
    command, checkpoint = KINDS[kind]
    with isolated_stream(stack, work / name, f"bench-{name}", folder / f"stream-{name}.log",
                         command) as (settings, stream):
        topics = settings.kafka.topics
        sampler = OffsetSampler(settings, topics.raw, topics.scored)
        sampler.start()
        sinks = SinkCounter(settings) if kind == "stream" else None
        watcher = None
        try:
            replay(settings, itertools.islice(rows, plan.priming), Pace(rate=5_000), progress=False)
            stream.wait_for(lambda: (sampler.latest() or (0, 0, 0))[2] >= plan.priming, plan.start_patience_s,
                            f"the {plan.priming} priming transactions scored")
            if sinks:
                sinks.start()
            watcher = watch(settings, stream) if watch else None
            began = time.time()
            producer = replay(settings, until(rows, time.monotonic() + plan.warmup_s + seconds), Pace(rate=rate_),
                              progress=False)
            sent_until = time.time()
            drain(stream, sampler, plan.tail_s, began)
            observed_until = time.time()
            step.summary["watched"] = watcher.halt() if watcher else None
            stream.kill()
        finally:
            samples = pd.DataFrame(sampler.halt(), columns=["t", "sent", "scored"])
            counts = sinks.halt() if sinks and sinks.is_alive() else None
        batches = micro_batches(settings.checkpoint_dir / checkpoint, began, observed_until)
        sent_ms = record_times_ms(settings, topics.raw)
        scored = scored_times_ms(settings, topics.scored)
    shutil.rmtree(work / name, ignore_errors=True)
    window = (began + plan.warmup_s, min(began + plan.warmup_s + seconds, sent_until))
    step.lag = samples.assign(t_s=samples.t - began, lag=samples.sent - samples.scored)
    step.latency = pd.DataFrame({"sent_s": scored.sent_ms / 1000 - began,
                                 "latency_s": (scored.scored_ms - scored.sent_ms) / 1000})
    step.latency = step.latency[step.latency.sent_s >= 0]
    latency = latency_summary(sent_ms, scored, window, observed_until)
    input_rate = latency["sent"] / (window[1] - window[0])
    processed = scored_rate(step.lag, plan.warmup_s, sent_until - began + 1)  # not the drain after it
    in_window = step.lag[(step.lag.t_s >= plan.warmup_s) & (step.lag.t < window[1])]
    growth = float(np.polyfit(in_window.t_s, in_window.lag, 1)[0]) if len(in_window) > 2 else None
    step.summary.update({
        "kind": kind, "phase": phase, "rate": rate_, "warmup_s": plan.warmup_s, "seconds": seconds,
        "input_rate": round(input_rate), "scored_rate": None if processed is None else round(processed),
        "bounded": processed is not None and processed >= (1 - TOLERANCE) * input_rate,
        "lag_growth_per_s": None if growth is None else round(growth),
        "lag_max": int(step.lag.lag.max()), "latency_s": latency, "micro_batches": batches,
        "sinks_s": sink_latency(sent_ms, counts, window, observed_until) if counts is not None else None,
        "producer": producer, "observed_s": round(observed_until - began, 1),
        "lag_samples": step.lag[["t_s", "sent", "scored"]].round(2).values.tolist(),
    })
    return step


class MemorySampler(threading.Thread):
    """Every second: the resident memory (bytes) of a process and all its descendants (JVMs, Python workers).
    ``before_halt``: run first by ``halt()``."""

    def __init__(self, pid: int, before_halt: Callable[[], None] | None = None):
        super().__init__(daemon=True)
        self.pid, self.before_halt = pid, before_halt
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._halt.wait(1.0):
            self.samples.append((time.time(), int(resident_memory_mb(self.pid) * 2 ** 20)))

    def halt(self) -> list[tuple[float, int]]:
        if self.before_halt is not None:
            self.before_halt()
        self._halt.set()
        self.join(10)
        return self.samples


def month_summary(step: Step, progress: pd.DataFrame, history: pd.DataFrame, plan: Plan, began: float) -> dict:
    """Decision micro-batches by replayed day (the day of the transaction being sent when the batch was reported),
    their median duration on day 1 and on the last day, the state's size, and the peak resident memory."""
    sent = ((progress.reported_at - began) * plan.replay_rate).clip(0, len(history) - 1).astype(int)
    start_day = history.TX_DATETIME.iloc[0].normalize()
    progress = progress.assign(day=(history.TX_DATETIME.iloc[sent].dt.normalize() - start_day).dt.days.to_numpy() + 1)
    by_day = progress[progress.input_rows > 0].groupby("day").agg(
        batches=("batch_id", "size"), median_s=("duration_ms", lambda d: float(np.median(d)) / 1000),
        records=("input_rows", "median"), state_keys=("state_keys", "max"), state_records=("state_records", "max"),
        state_mb=("state_bytes", lambda b: float(b.max()) / 1e6))
    memory = step.summary.get("watched") or []
    first, last = (by_day.iloc[0], by_day.iloc[-1]) if len(by_day) else (None, None)
    return {"days": by_day.reset_index().round(3).to_dict("records"),
            "day_first_median_s": None if first is None else first.median_s,
            "day_last_median_s": None if last is None else last.median_s,
            "growth": None if first is None or last is None or not first.median_s else round(
                last.median_s / first.median_s, 2),
            "peak_rss_gb": round(max((m for _, m in memory), default=0) / 1e9, 2)}


def order_effect(streamed: pd.DataFrame, sent: pd.DataFrame, settings: Settings) -> dict:
    """The stream's decisions (``scored_features``) against the batch features of the transactions ``sent``
    (handbook columns, TX_FRAUD included) scored by the same model: rows compared, rows whose features differ (by
    more than 1e-6, relative to 1 + |batch value|), the features that differ most often, and the average precision
    of the stream's and the batch's scores against TX_FRAUD."""
    batch = add_all_features_pandas(sent, settings.stream.delay_days)
    batch = batch.set_index(batch.TRANSACTION_ID.astype(str))  # as the stream publishes ids: text
    common = batch.index.intersection(streamed.index)
    batch, streamed = batch.loc[common], streamed.loc[common]
    names = [n for n in [*HANDBOOK_FEATURES, *EXTRA_FEATURES] if n in streamed.columns]
    expected = batch[names].to_numpy(float)
    differs = np.abs(streamed[names].to_numpy(float) - expected) > 1e-6 * (1 + np.abs(expected))
    by_feature = pd.Series(differs.sum(axis=0), index=names).sort_values(ascending=False)
    batch_scores = score_features(load_model(newest_model(settings.stream.model)), batch).fraud_score
    return {"rows": len(common), "rows_differing": int(differs.any(axis=1).sum()),
            "features_differing": {n: int(c) for n, c in by_feature[by_feature > 0].head(6).items()},
            "ap_stream": round(float(average_precision_score(batch.TX_FRAUD, streamed.fraud_score)), 4),
            "ap_batch": round(float(average_precision_score(batch.TX_FRAUD, batch_scores)), 4)}


def warm_start_effect(history: pd.DataFrame, settings: Settings) -> dict:
    """Average precision over the week from WARM_START_WEEK, scored cold (features from that week only) and warm
    (features from the whole history before the week's end), by the served model."""
    start = pd.Timestamp(WARM_START_WEEK)
    end = start + pd.Timedelta(days=7)
    delay = settings.stream.delay_days
    in_week = lambda frame: frame[(frame.TX_DATETIME >= start) & (frame.TX_DATETIME < end)]  # noqa: E731
    cold = add_all_features_pandas(in_week(history), delay)
    warm = in_week(add_all_features_pandas(history[history.TX_DATETIME < end], delay))
    model = load_model(newest_model(settings.stream.model))
    ap = {name: round(float(average_precision_score(frame.TX_FRAUD, score_features(model, frame).fraud_score)), 4)
          for name, frame in (("cold", cold), ("warm", warm))}
    return {"week": f"{start:%Y-%m-%d} to {end - pd.Timedelta(days=1):%Y-%m-%d}", "transactions": len(cold),
            "ap_cold": ap["cold"], "ap_warm": ap["warm"]}


class MonthProgress(TypedDict, total=False):
    """What run_month's watcher collects: the stream's settings and start, its progress rows and scored records."""
    settings: Settings
    began: float
    rows: pd.DataFrame
    scored: pd.DataFrame


def run_month(stack: Settings, out: Path, work: Path, plan: Plan, history: pd.DataFrame) -> Step:
    """``replay_days`` of the dataset at ``replay_rate`` into a stream with every sink; its summary's "month" is
    month_summary's."""
    days = history[history.TX_DATETIME < history.TX_DATETIME.iloc[0].normalize()
                   + pd.Timedelta(days=plan.replay_days)]
    seconds = len(days) / plan.replay_rate - plan.warmup_s
    progress: MonthProgress = {}

    def watch(settings: Settings, stream: StreamProcess) -> MemorySampler:
        progress["settings"], progress["began"] = settings, time.time()

        def read_progress() -> None:  # the stream's progress rows, read before the pipeline goes
            with connect(settings) as conn, conn.cursor() as cur:
                cur.execute("SELECT batch_id, UNIX_TIMESTAMP(reported_at), input_rows, duration_ms, state_keys, "
                            "state_records, state_bytes FROM stream_progress WHERE query_name = 'fraud-decision'")
                progress["rows"] = pd.DataFrame(cur.fetchall(), columns=[
                    "batch_id", "reported_at", "input_rows", "duration_ms", "state_keys", "state_records",
                    "state_bytes"]).astype(float)
            progress["scored"] = scored_features(settings, settings.kafka.topics.scored)
        assert stream.proc is not None  # watch is given the started stream
        return MemorySampler(stream.proc.pid, before_halt=read_progress)

    step = run_step(stack, out, work, plan, iter(days.itertuples(index=False)), "stream", "month",
                    plan.replay_rate, seconds, watch)
    if "rows" in progress:
        step.summary["month"] = month_summary(step, progress["rows"], days.iloc[plan.priming:], plan,
                                              progress["began"])
        step.summary["month"]["order"] = order_effect(progress["scored"], days, progress["settings"])
    return step


def figure(summary: dict, bound_key: str = "lower_bound") -> str:
    if summary is None or summary.get("p50") is None:
        return "nothing measured"
    return " / ".join(f"{'>= ' if summary[f'p{q}_{bound_key}'] else ''}{summary[f'p{q}']:.2f}"
                      for q in PERCENTILES) + " s"


def met(summary: dict, targets: dict[str, float]) -> bool | None:
    verdicts = []
    for name, limit in targets.items():
        value, bound = summary[name], summary[f"{name}_lower_bound"]
        verdicts.append(None if value is None or (bound and value <= limit) else value <= limit)
    return False if False in verdicts else None if None in verdicts else True


def flow_figure(summary: dict) -> str:
    batches = summary["micro_batches"]
    growth = summary["lag_growth_per_s"]
    lag = "bounded" if summary["bounded"] else "growing" + ("" if growth is None else f" ({growth:+,}/s)")
    return (f"sent {rate(summary['input_rate'])}, scored {rate(summary['scored_rate'])}, lag {lag}; "
            f"{batches['count']} micro-batches, median {batches['median_s']} s, max {batches['max_s']} s")


def guarded(kind: str, phase: str, rate_: int, run: Callable[[], Step]) -> Step:
    """``run()``; a run that fails is reported as failed and the benchmark goes on with the next."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - a failed run is a figure of the benchmark, not the end of it
        traceback.print_exc()
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return Step(kind, phase, rate_, {"kind": kind, "phase": phase, "rate": rate_, "error": message})


def step_rows(step: Step, floor: Step | None) -> list[Row]:
    name = f"stream at {step.rate:,}/s, all sinks"
    if "error" in step.summary:
        return [Row(name, "run", f"failed: {step.summary['error']}")]
    targets = LATENCY_TARGETS.get(step.rate, {})
    latency = step.summary["latency_s"]
    rows = [Row(name, "latency p50 / p95 / p99, send -> result topic", figure(latency),
                ", ".join(f"{q} <= {limit:g} s" for q, limit in targets.items()), met(latency, targets) if targets
                else None),
            Row(name, "throughput", flow_figure(step.summary))]
    if floor is not None and "error" not in floor.summary and latency["p50"] and floor.summary["latency_s"]["p50"]:
        ratio = latency["p50"] / floor.summary["latency_s"]["p50"]
        rows.append(Row(name, "p50 over the stateless floor's", f"{ratio:.1f}x", f"<= {FLOOR_RATIO_TARGET:g}x",
                        ratio <= FLOOR_RATIO_TARGET))
    for sink, summary in (step.summary.get("sinks_s") or {}).items():
        rows.append(Row(name, f"in {sink}: p50 / p95 / p99 after send", figure(summary),
                        f"p99 <= {SINK_TARGET_P99_S:g} s" if step.rate == 2_000 else "",
                        met(summary, {"p99": SINK_TARGET_P99_S}) if step.rate == 2_000 else None))
    return rows


def comparison_rows(step: Step, floor: Step | None = None) -> list[Row]:
    """A floor's rows, or a prototype's or the decision query's alone (``floor``: the stateless floor, its p50 ratio
    to it)."""
    name = (f"{'prototype' if step.kind in PROTOTYPES else 'floor'}: {step.kind} query at {step.rate:,}/s"
            if step.kind != "decisions" else f"the decision query alone (--sinks kafka) at {step.rate:,}/s")
    if "error" in step.summary:
        return [Row(name, "run", f"failed: {step.summary['error']}")]
    rows = [Row(name, "latency p50 / p95 / p99, send -> result topic", figure(step.summary["latency_s"])),
            Row(name, "throughput", flow_figure(step.summary))]
    if floor is not None and "error" not in floor.summary and step.summary["latency_s"]["p50"] and \
            floor.summary["latency_s"]["p50"]:
        rows.append(Row(name, "p50 over the stateless floor's",
                        f"{step.summary['latency_s']['p50'] / floor.summary['latency_s']['p50']:.1f}x"))
    return rows


def sustained_row(step: Step, plan: Plan) -> Row:
    what = "decision path (--sinks kafka)" if step.kind == "decisions" else "every sink running"
    measure = f"bounded decision lag over {plan.sustain_s / 60:g} min at {step.rate:,} events/s"
    if "error" in step.summary:
        return Row(f"sustained, {what}", measure, f"failed: {step.summary['error']}",
                   f">= {SUSTAIN_TARGETS[step.kind]:,} events/s", False)
    summary = step.summary
    return Row(f"sustained, {what}", measure, flow_figure(summary), f">= {SUSTAIN_TARGETS[step.kind]:,} events/s",
               summary["bounded"] and summary["input_rate"] >= (1 - TOLERANCE) * SUSTAIN_TARGETS[step.kind])


def month_rows(step: Step, month: dict, plan: Plan) -> list[Row]:
    name = f"{plan.replay_days} days replayed at {plan.replay_rate:,}/s, all sinks"
    if "error" in step.summary:
        return [Row(name, "run", f"failed: {step.summary['error']}")]
    days = month["days"]
    last = days[-1] if days else {}
    return [
        Row(name, "decision micro-batch, median: first day / last day",
            f"{month['day_first_median_s']} s / {month['day_last_median_s']} s ({month['growth']}x; "
            f"{int(days[0]['records']) if days else 0:,} / {int(last.get('records', 0)):,} records a batch)",
            f"<= {MONTH_GROWTH_TARGET:g}x", month["growth"] is not None and month["growth"] <= MONTH_GROWTH_TARGET),
        Row(name, "state at the end: keys / records / MB",
            f"{int(last.get('state_keys') or 0):,} / {int(last.get('state_records') or 0):,} / "
            f"{last.get('state_mb') or 0:.1f}"),
        Row(name, "peak resident memory of the stream's processes", f"{month['peak_rss_gb']} GB",
            f"< {MEMORY_TARGET_GB:g} GB", 0 < month["peak_rss_gb"] < MEMORY_TARGET_GB),
        *order_rows(name, month.get("order")),
    ]


def order_rows(name: str, order: dict | None) -> list[Row]:
    if not order:
        return []
    features = ", ".join(f"{n} {c:,}" for n, c in order["features_differing"].items()) or "none"
    return [Row(name, "decisions whose features differ from the batch features (arrival order)",
                f"{order['rows_differing']:,} of {order['rows']:,} "
                f"({order['rows_differing'] / max(order['rows'], 1):.2%});"
                f" most often: {features}"),
            Row(name, "average precision: stream / batch, same transactions and model",
                f"{order['ap_stream']:.4f} / {order['ap_batch']:.4f}")]


def run(out: Path, quick: bool) -> Outcome:
    plan = QUICK if quick else FULL
    stack = running_test_stack()
    history = load_history(dataset_path(stack))
    work = out / "work-stream"
    steps, floors, prototypes, sustained = [], {}, {}, []
    month_step, month, warm = None, None, None
    try:
        for rate_ in plan.rates:
            print(f"stream: {rate_:,} events/s, every sink", flush=True)
            steps.append(guarded("stream", "rate", rate_, lambda: run_step(
                stack, out, work, plan, transactions(history), "stream", "rate", rate_, plan.seconds)))
        for kind in ("stateless", "stateful"):
            print(f"floor: {kind} at {plan.floor_rate:,} events/s", flush=True)
            floors[kind] = guarded(kind, "floor", plan.floor_rate, lambda: run_step(
                stack, out, work, plan, transactions(history), kind, "floor", plan.floor_rate, plan.seconds))
        for kind in ("decisions", *PROTOTYPES):
            print(f"decisions only: {kind} at {plan.floor_rate:,} events/s", flush=True)
            prototypes[kind] = guarded(kind, "prototype", plan.floor_rate, lambda: run_step(
                stack, out, work, plan, transactions(history), kind, "prototype", plan.floor_rate, plan.seconds))
        for kind, rate_ in SUSTAIN_TARGETS.items():
            print(f"sustained: {kind} at {rate_:,} events/s for {plan.sustain_s:g} s", flush=True)
            sustained.append(guarded(kind, "sustain", rate_, lambda: run_step(
                stack, out, work, plan, transactions(history), kind, "sustain", rate_, plan.sustain_s)))
        print(f"month: {plan.replay_days} days at {plan.replay_rate:,} events/s", flush=True)
        month_step = guarded("stream", "month", plan.replay_rate, lambda: run_month(stack, out, work, plan,
                                                                                    history))
        month = month_step.summary.pop("month", None)
        print("warm start: average precision over a week, cold and warm", flush=True)
        warm = warm_start_effect(history, stack)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    measured = [s for s in [*steps, *floors.values(), *prototypes.values(), *sustained] if "error" not in s.summary]
    for step in measured:
        plots.step_plot(step, out / f"stream-{step.kind}-{step.phase}-{step.rate}.png")
    plots.latency_plot([s for s in steps if "error" not in s.summary], out / "stream-latency-by-rate.png")
    floor = floors.get("stateless")
    rows = [row for step in steps for row in step_rows(step, floor if step.rate == plan.floor_rate else None)]
    rows += [row for f in floors.values() for row in comparison_rows(f)]
    rows += [row for p in prototypes.values() for row in comparison_rows(p, floor)]
    rows += [sustained_row(step, plan) for step in sustained]
    if month_step is not None:
        rows += month_rows(month_step, month or {"days": [], "day_first_median_s": None, "day_last_median_s": None,
                                                 "growth": None, "peak_rss_gb": 0}, plan)
    if warm is not None:
        rows.append(Row(f"warm start, the week {warm['week']} ({warm['transactions']:,} tx)",
                        "average precision: cold start / warm start", f"{warm['ap_cold']:.4f} / {warm['ap_warm']:.4f}"))
    details = {"warm_start": warm, "plan": plan.__dict__, "tolerance": TOLERANCE, "steps": [s.summary for s in steps],
               "floors": {k: f.summary for k, f in floors.items()},
               "prototypes": {k: p.summary for k, p in prototypes.items()}, "sustained": [s.summary for s in sustained],
               "month": month, "month_run": month_step.summary if month_step else None}
    return Outcome(details, rows)
