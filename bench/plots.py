"""PNG plots of the streaming benchmark: latency and lag over time per step, throughput and latency by rate."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from bench.stream import Step

BIN_S = 5.0
MAX_POINTS = 20_000


def step_plot(step: Step, path: Path) -> None:
    """Latency of each scored transaction by send time (with 5-s p50 / p99), and the lag, over the step."""
    summary, latency, lag = step.summary, step.latency, step.lag
    if latency is None or lag is None:
        raise ValueError(f"{step.kind} {step.phase} at {step.rate}/s: no series to plot (the run failed)")
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    if len(latency):
        shown = latency.sample(MAX_POINTS, random_state=0) if len(latency) > MAX_POINTS else latency
        top.scatter(shown.sent_s, shown.latency_s, s=2, alpha=0.3, color="tab:blue", label="transaction")
        bins = latency.groupby((latency.sent_s // BIN_S) * BIN_S + BIN_S / 2).latency_s
        for q, style in ((0.5, "-"), (0.99, "--")):
            series = bins.quantile(q)
            top.plot(series.index, series.values, style, color="black", label=f"p{int(q * 100)} per {BIN_S:g} s")
    unscored = summary["latency_s"]["unscored"]
    top.set_ylabel("send -> scored topic (s)")
    kind = {"sustain": "sustained run", "month": "month", "floor": "floor"}.get(step.phase, "run")
    top.set_title(f"{step.kind}, {kind} at {step.rate:,} events/s: sent {summary['input_rate']:,}/s, scored "
                  f"{summary['scored_rate'] or 0:,}/s, {unscored:,} unscored at the end")
    if len(latency):
        top.legend(loc="upper left")
    lag = lag[lag.t_s >= 0]  # not the priming before the step
    bottom.plot(lag.t_s, lag.lag, color="tab:red")
    bottom.set_ylabel("lag (sent - scored)")
    bottom.set_xlabel("seconds since the step started (send time)")
    for axis in (top, bottom):
        axis.axvspan(0, summary["warmup_s"], color="grey", alpha=0.15)
        axis.axvline(summary["warmup_s"] + summary["seconds"], color="grey", linestyle=":")
        axis.grid(alpha=0.3)
    _save(figure, path)


def latency_plot(steps: list[Step], path: Path) -> None:
    """p50 / p95 / p99 latency by input rate (hollow markers: lower bounds)."""
    if not steps:
        return
    figure, axis = plt.subplots(figsize=(7, 5))
    for q, marker in ((50, "o"), (95, "s"), (99, "^")):
        points = [(s.rate, s.summary["latency_s"][f"p{q}"], s.summary["latency_s"][f"p{q}_lower_bound"])
                  for s in steps if s.summary["latency_s"][f"p{q}"] is not None]
        if not points:
            continue
        line, = axis.plot([p[0] for p in points], [p[1] for p in points], "-", label=f"p{q}")
        for rate, value, bound in points:
            axis.plot(rate, value, marker, color=line.get_color(),
                      markerfacecolor="none" if bound else line.get_color())
    axis.set_yscale("log")
    _save_by_rate(figure, axis, "send -> scored topic (s)", "Stream latency by input rate (hollow: lower bound)", path)


def _save_by_rate(figure, axis, ylabel: str, title: str, path: Path) -> None:
    """Finish a plot over the input rates asked for (log scale) and save it."""
    axis.set_xscale("log")
    axis.set_xlabel("input rate asked (events/s)")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3, which="both")
    _save(figure, path)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
