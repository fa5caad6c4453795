"""Streaming: the stream with all four sinks, fed at fixed input rates, everything on the same two cores.

Each step runs on a fresh isolated pipeline (``bench.pipeline``): start ``fraud stream``,
send ``priming`` transactions and wait until they are scored (the JVM, the Python
workers and the model are warm), then replay the dataset (``fraud.producer``, in this
process; the simulator continues when the dataset runs out) at the step's rate for
``warmup_s + seconds``, keep watching up to ``tail_s`` more, kill the stream and read
the topics. A step is bounded in time whatever the stream does.

- Latency of a transaction: the result record's timestamp (the scored topic stamps
  records with the broker's append time) minus its ``kafka_timestamp`` (the raw
  record's timestamp: the producer's send time, Kafka's CreateTime). Percentiles
  over the transactions sent after the warm-up; one still unscored when the step
  ends counts with the time it has waited so far, and a percentile those affect is
  given as a lower bound (">=").
- Lag: transactions sent minus transactions scored (end offsets of both topics,
  sampled every second). Scored rate: transactions scored from the end of the
  warm-up to the producer's stop, over that time (counting from one micro-batch to
  the next was fooled by a large batch whose records reach the topic over several
  samples: 31,226/s "scored" at 10,000/s sent). The lag is bounded when the scored rate keeps up with
  the input rate (within TOLERANCE). The warm-up is longer than today's latency
  (about 35 s), so the window sees the stream's steady state, not its start.
- Sustained throughput: a last run of ``sustain_s`` (5 minutes) at the highest rate
  whose step kept up (or 80% of the best scored rate when none did).
"""
from __future__ import annotations

import itertools
import math
import shutil
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from bench import plots
from bench.pipeline import isolated_stream, running_test_stack
from bench.report import Outcome, Row, rate
from bench.topics import OffsetSampler, record_times_ms, scored_times_ms
from fraud.config import Settings
from fraud.data import dataset_path
from fraud.producer import Pace, load_history, replay
from fraud.simulator import Simulator


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]
    warmup_s: float         # sent at the step's rate, left out of the latency figures
    seconds: float          # each rate step, after the warm-up
    sustain_s: float        # the sustained-throughput run
    tail_s: float           # longest wait for the last transactions after the producer stops
    priming: int            # transactions scored before a step starts
    start_patience_s: float = 300.0


FULL = Plan(rates=(500, 2_000, 5_000, 10_000), warmup_s=40, seconds=60, sustain_s=300, tail_s=45, priming=1_000)
QUICK = Plan(rates=(500, 2_000), warmup_s=15, seconds=30, sustain_s=45, tail_s=30, priming=300)
LATENCY_TARGETS = {2_000: {"p50": 1.0, "p99": 2.0}}  # seconds, at that input rate
SUSTAIN_TARGET = 10_000
TOLERANCE = 0.05  # the lag is bounded when the scored rate is at least 95% of the input rate
PERCENTILES = (50, 95, 99)


@dataclass
class Step:
    """One run at a fixed input rate: the summary for results.json and the series the plots draw."""
    phase: str
    rate: int
    summary: dict = field(default_factory=dict)
    latency: pd.DataFrame | None = None  # sent_s (since the step's start), latency_s
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


def latency_summary(sent_ms: np.ndarray, scored: pd.DataFrame, window: tuple[float, float],
                    observed_until: float) -> dict:
    """Percentiles (seconds) over the transactions sent within ``window`` (epoch seconds); the unscored ones
    count with their wait so far (``observed_until`` minus sent), which makes a percentile they reach a lower
    bound."""
    low, high = (int(bound * 1000) for bound in window)
    sent = sent_ms[(sent_ms >= low) & (sent_ms < high)]
    done = scored[(scored.sent_ms >= low) & (scored.sent_ms < high)]
    measured = ((done.scored_ms - done.sent_ms) / 1000).to_numpy()
    unscored = np.fromiter((Counter(sent.tolist()) - Counter(done.sent_ms.tolist())).elements(), dtype=np.int64)
    waited = (observed_until * 1000 - unscored) / 1000
    every = np.concatenate([measured, waited])
    summary = {"sent": len(sent), "scored": len(measured), "unscored": len(unscored)}
    for q in PERCENTILES:
        value = float(np.percentile(every, q)) if len(every) else None
        bound = len(waited) > 0 and value is not None and (len(waited) > (1 - q / 100) * len(every)
                                                           or waited.min() < value)
        summary[f"p{q}"] = None if value is None else round(value, 3)
        summary[f"p{q}_lower_bound"] = bool(bound)
    summary["max_scored"] = round(float(measured.max()), 3) if len(measured) else None
    return summary


def scored_rate(lag: pd.DataFrame, since_s: float, until_s: float = math.inf) -> float | None:
    """Transactions scored per second over [``since_s``, ``until_s``]: the scored count at the window's last
    sample minus at its first, over the time between. The count moves in steps (a micro-batch's records reach
    the topic within a few seconds), so a window should span several micro-batches; None with fewer than two
    samples."""
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
    return {"count": len(durations), "median_s": round(float(np.median(durations)), 1) if durations else None,
            "max_s": round(max(durations), 1) if durations else None,
            "unfinished_at_end_s": None if running is None else round(running, 1)}


def drain(stream, sampler: OffsetSampler, tail_s: float, began: float) -> None:
    """Wait until every transaction sent is scored, at most ``tail_s``; not at all when the backlog is more than
    four times what the stream can score in that time at the pace it showed since ``began`` (the steps far
    above what it can do)."""
    deadline = time.monotonic() + tail_s
    samples = pd.DataFrame(sampler.samples, columns=["t", "sent", "scored"])
    pace = scored_rate(samples.assign(t_s=samples.t - began), 0.0)
    backlog = samples.sent.iloc[-1] - samples.scored.iloc[-1]
    if pace is not None and backlog > 4 * tail_s * pace:
        return
    while time.monotonic() < deadline and stream.proc.poll() is None:
        _, sent, scored = sampler.latest()
        if scored >= sent:
            return
        time.sleep(1)


def run_step(stack: Settings, folder: Path, work: Path, plan: Plan, history: pd.DataFrame, phase: str,
             rate_: int, seconds: float) -> Step:
    name = f"{phase}-{rate_}"
    step = Step(phase, rate_)
    with isolated_stream(stack, work / name, f"bench-{name}", folder / f"stream-{name}.log") as (settings, stream):
        topics = settings.kafka.topics
        sampler = OffsetSampler(settings, topics.raw, topics.scored)
        sampler.start()
        try:
            rows = transactions(history)
            replay(settings, itertools.islice(rows, plan.priming), Pace(rate=5_000), progress=False)
            stream.wait_for(lambda: (sampler.latest() or (0, 0, 0))[2] >= plan.priming, plan.start_patience_s,
                            f"the {plan.priming} priming transactions scored")
            began = time.time()
            producer = replay(settings, until(rows, time.monotonic() + plan.warmup_s + seconds), Pace(rate=rate_),
                              progress=False)
            sent_until = time.time()
            drain(stream, sampler, plan.tail_s, began)
            observed_until = time.time()
            stream.kill()
        finally:
            samples = pd.DataFrame(sampler.halt(), columns=["t", "sent", "scored"])
        batches = micro_batches(settings.checkpoint_dir / "scoring", began, observed_until)
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
    step.summary = {
        "phase": phase, "rate": rate_, "warmup_s": plan.warmup_s, "seconds": seconds,
        "input_rate": round(input_rate), "scored_rate": None if processed is None else round(processed),
        "bounded": processed is not None and processed >= (1 - TOLERANCE) * input_rate,
        "lag_growth_per_s": None if growth is None else round(growth),
        "lag_at_producer_end": int(step.lag[step.lag.t <= sent_until].lag.iloc[-1]),
        "lag_max": int(step.lag.lag.max()), "latency_s": latency, "micro_batches": batches,
        "producer": producer, "observed_s": round(observed_until - began, 1),
        "lag_samples": step.lag[["t_s", "sent", "scored"]].round(2).values.tolist(),
    }
    return step


def latency_figure(summary: dict) -> str:
    latency = summary["latency_s"]
    if latency["p50"] is None:
        return "nothing sent"
    return " / ".join(f"{'>= ' if latency[f'p{q}_lower_bound'] else ''}{latency[f'p{q}']:.2f}"
                      for q in PERCENTILES) + f" s ({latency['unscored']:,} of {latency['sent']:,} unscored)"


def latency_met(summary: dict) -> bool | None:
    targets = LATENCY_TARGETS.get(summary["rate"])
    if not targets:
        return None
    verdicts = []
    for name, limit in targets.items():
        value, bound = summary["latency_s"][name], summary["latency_s"][f"{name}_lower_bound"]
        verdicts.append(None if value is None or (bound and value <= limit) else value <= limit)
    return False if False in verdicts else None if None in verdicts else True


def flow_figure(summary: dict) -> str:
    batches = summary["micro_batches"]
    growth = summary["lag_growth_per_s"]
    lag = "bounded" if summary["bounded"] else "growing" + ("" if growth is None else f" ({growth:+,}/s)")
    return (f"sent {rate(summary['input_rate'])}, scored {rate(summary['scored_rate'])}, lag {lag}; "
            f"{batches['count']} micro-batches, median {batches['median_s']} s, max {batches['max_s']} s")


def sustain_rate(steps: list[Step]) -> int | None:
    """The highest step rate that kept up; else 80% of the best scored rate (rounded down to 50)."""
    kept_up = [s.rate for s in steps if s.summary.get("bounded")]
    if kept_up:
        return max(kept_up)
    best = max((s.summary["scored_rate"] for s in steps if s.summary.get("scored_rate")), default=None)
    return None if best is None else max(50, int(0.8 * best) // 50 * 50)


def sustained_row(step: Step | None, plan: Plan) -> Row:
    measure = f"highest input rate with bounded lag over {plan.sustain_s / 60:g} min"
    target = f">= {SUSTAIN_TARGET:,} events/s"
    if step is None or "error" in step.summary:
        return Row("stream, all sinks", measure, "not measured" if step is None else f"failed: {step.summary['error']}",
                   target, None)
    summary = step.summary
    if summary["bounded"]:
        sustained = step.rate if summary["input_rate"] >= (1 - TOLERANCE) * step.rate else summary["input_rate"]
        return Row("stream, all sinks", measure, f"{sustained:,} events/s ({flow_figure(summary)})", target,
                   sustained >= SUSTAIN_TARGET)
    return Row("stream, all sinks", measure, f"below {step.rate:,} events/s ({flow_figure(summary)})", target, False)


def step_rows(step: Step) -> list[Row]:
    name = f"stream at {step.rate:,}/s"
    if "error" in step.summary:
        return [Row(name, "step", f"failed: {step.summary['error']}")]
    targets = LATENCY_TARGETS.get(step.rate)
    target = ", ".join(f"{q} <= {limit:g} s" for q, limit in targets.items()) if targets else ""
    return [Row(name, f"latency p50 / p95 / p99, send -> scored topic ({step.summary['seconds']:g} s)",
                latency_figure(step.summary), target, latency_met(step.summary)),
            Row(name, "throughput", flow_figure(step.summary))]


def guarded(phase: str, rate_: int, step: Callable[[], Step]) -> Step:
    """``step()``; one that fails is reported as failed and the benchmark goes on with the next."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - a failed step is a figure of the benchmark, not the end of it
        traceback.print_exc()
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return Step(phase, rate_, {"phase": phase, "rate": rate_, "error": message})


def run(out: Path, quick: bool) -> Outcome:
    plan = QUICK if quick else FULL
    stack = running_test_stack()
    history = load_history(dataset_path(stack))
    work = out / "work-stream"
    steps, sustain = [], None
    try:
        for rate_ in plan.rates:
            print(f"stream: {rate_:,} events/s for {plan.warmup_s + plan.seconds:g} s", flush=True)
            steps.append(guarded("rate", rate_, lambda: run_step(stack, out, work, plan, history, "rate", rate_,
                                                                  plan.seconds)))
        candidate = sustain_rate(steps)
        if candidate is not None:
            print(f"stream: sustained run, {candidate:,} events/s for {plan.sustain_s:g} s", flush=True)
            sustain = guarded("sustain", candidate, lambda: run_step(stack, out, work, plan, history, "sustain",
                                                                      candidate, plan.sustain_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    measured = [s for s in [*steps, sustain] if s is not None and "error" not in s.summary]
    for step in measured:
        plots.step_plot(step, out / f"stream-{step.phase}-{step.rate}.png")
    plots.throughput_plot([s for s in steps if "error" not in s.summary], out / "stream-throughput.png")
    plots.latency_plot([s for s in steps if "error" not in s.summary], out / "stream-latency-by-rate.png")
    details = {"plan": plan.__dict__, "tolerance": TOLERANCE, "sinks": ["delta", "mysql", "elasticsearch", "kafka"],
               "steps": [s.summary for s in steps], "sustain": sustain.summary if sustain else None}
    rows = [sustained_row(sustain, plan)] + [row for step in steps for row in step_rows(step)]
    return Outcome(details, rows)
