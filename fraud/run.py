"""``fraud run`` (what ``make run`` starts): the whole pipeline on the local stack until Ctrl-C.

It brings the stack up, starts the streaming scorer, a producer and the live
dashboard as child processes (logs under ``<state_dir>/logs``), and prints where
to look and the counts so far. The producer replays the published dataset when the data
directory has it, otherwise the simulator's endless stream; either way it
resumes after the last transaction already in the raw topic, so a second run
adds new transactions instead of repeating old ones. Ctrl-C stops the producer, then
the stream (between micro-batches), then the dashboard, then returns; so does SIGTERM.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.clients.elasticsearch import SCORED, elasticsearch_client
from fraud.clients.kafka import read_topic, topic_end_offsets
from fraud.clients.mysql import connect
from fraud.config import PROJECT_ROOT, Settings
from fraud.data import TRANSACTIONS
from fraud.process import Child
from fraud.stack.manager import stack_up
from fraud.stream.serving import check_servable

REPORT_EVERY_S = 10
LATENCY_SAMPLE = 2_000
TAIL = 100  # records read back from the end of each raw partition to find where the producer stopped


def _child(args: list[str], log: Path, config: str | None) -> Child:
    """``fraud [--config CONFIG] <args>`` in its own process group: Ctrl-C reaches this process only, which stops
    children in order."""
    return Child([sys.executable, "-m", "fraud.cli", *(["--config", config] if config else []), *args], log,
                 cwd=PROJECT_ROOT)


def last_produced(settings: Settings, below: int | None = None) -> tuple[datetime | None, int | None]:
    """Event time and id of the newest transaction (id <= ``below``, if given) among the last TAIL records of
    each partition of the raw topic: Kafka, not the sinks, knows what was sent but not yet scored. Ids are those
    ``fraud run``'s producer sends, integers that grow with time; a record with any other id is passed over."""
    topic = settings.kafka.topics.raw
    best: tuple[datetime | None, int | None] = (None, None)
    tails = {p: end - TAIL for p, end in topic_end_offsets(settings, topic).items()}
    for message in read_topic(settings, topic, start=tails):
        try:
            event = json.loads(message.value() or b"")
            candidate = (datetime.fromisoformat(event["tx_datetime"]), int(event["transaction_id"]))
        except (TypeError, ValueError, KeyError):  # a broken record: the dead letters' business
            continue
        if (below is None or candidate[1] <= below) and (best[1] is None or candidate[1] > best[1]):
            best = candidate
    return best


def producer_args(settings: Settings, rate: float) -> list[str]:
    """Replay the dataset (or simulate) from just after the last transaction of it already sent."""
    dataset = settings.data_dir / TRANSACTIONS if settings.data_dir else None
    args = ["produce", "--rate", str(rate)]
    if dataset is not None and dataset.exists():  # ids grow with time in the dataset
        newest_id = int(pd.read_parquet(dataset, columns=["TRANSACTION_ID"]).TRANSACTION_ID.max())
        last_time, _ = last_produced(settings, below=newest_id)
        return args + ["--input", str(dataset)] + (
            ["--start", (last_time + timedelta(microseconds=1)).isoformat()] if last_time else [])
    last_time, last_id = last_produced(settings)
    next_day = (last_time + timedelta(days=1)).date().isoformat() if last_time else "2026-01-01"
    return args + ["--simulate", "--start", next_day, "--first-id", str((last_id or -1) + 1)]


def counts(settings: Settings) -> str:
    """One line: scored transactions by decision, dead letters, scored Elasticsearch documents, and the median
    latency from Kafka to the decision on the result topic (``decided_at``) of the last minute's newest
    LATENCY_SAMPLE."""
    try:
        with connect(settings) as conn, conn.cursor() as cur:
            cur.execute("SELECT decision, COUNT(*) FROM scored_transactions GROUP BY decision")
            decisions = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM dead_letters")
            dead = cur.fetchone()[0]
            cur.execute("SELECT TIMESTAMPDIFF(MICROSECOND, kafka_timestamp, decided_at) / 1e6 FROM scored_transactions "
                        "WHERE decided_at > NOW(3) - INTERVAL 1 MINUTE ORDER BY decided_at DESC LIMIT %s",
                        (LATENCY_SAMPLE,))
            latencies = [float(row[0]) for row in cur.fetchall() if row[0] is not None]
        es = elasticsearch_client(settings)
        documents = es.count(index=settings.elasticsearch.index, query=SCORED)["count"]  # not label-only ones
    except Exception as exc:  # noqa: BLE001 - a report line, never a reason to stop the pipeline
        return f"(counts unavailable: {str(exc).splitlines()[0][:120]})"
    scored = sum(decisions.values())
    p50 = f"{float(np.median(latencies)):.2f}s" if latencies else "-"
    return (f"scored {scored:,} (review {decisions.get('review', 0):,}, block {decisions.get('block', 0):,}) | "
            f"Elasticsearch {documents:,} | dead letters {dead:,} | Kafka-to-decision p50, last minute {p50}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_pipeline(settings: Settings, rate: float, model: str | None, config: str | None = None) -> int:
    """Start the stack, then ``fraud stream``, ``fraud produce`` and ``fraud dashboard`` as children (with
    ``config``, the configuration file this command was given), print counts every REPORT_EVERY_S seconds until
    Ctrl-C / SIGTERM or a child fails, and stop the children in order. Returns the exit code (1 when the stream or
    the producer failed). Raises ConfigError before anything starts when the stream could not serve the model."""
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: the same orderly stop as Ctrl-C
    check_servable(model or settings.stream.model)  # a ConfigError before the stack starts, not a stream dying
    settings = stack_up(settings)
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    produce = producer_args(settings, rate)
    stream = _child(["stream", *(["--model", model] if model else [])], logs / "stream.log", config)
    producer = _child(produce, logs / "producer.log", config)
    dashboard = _child(["dashboard"], logs / "dashboard.log", config)
    mysql, es = settings.mysql, settings.elasticsearch
    spark_ui = "; Spark UI http://127.0.0.1:4040" if settings.stream.spark_ui else ""
    print(f"""
fraud pipeline running ({datetime.now():%H:%M:%S})
  producer     {' '.join(produce)}  (log {logs / 'producer.log'})
  dashboard    http://{settings.dashboard.host}:{settings.dashboard.port}/  (log {logs / 'dashboard.log'})
  stream       fraud stream  (log {logs / 'stream.log'}{spark_ui})
  results      MySQL {mysql.host}:{mysql.port}/{mysql.database}.scored_transactions (user {mysql.user}, password in
               {settings.secrets_file}), Elasticsearch {es.url}/{es.index}, Kafka topic {settings.kafka.topics.scored}
  dead letters MySQL dead_letters, Kafka topic {settings.kafka.topics.deadletter}
  stop         Ctrl-C (the services keep running: `make stack-down` stops them)
""", flush=True)
    code, dashboard_gone = 0, False
    try:
        while True:
            time.sleep(REPORT_EVERY_S)
            print(f"{datetime.now():%H:%M:%S} {counts(settings)}", flush=True)
            if stream.poll() is not None:
                print(f"the stream stopped (exit {stream.returncode}); see {logs / 'stream.log'}", file=sys.stderr)
                code = 1
                break
            if dashboard.poll() is not None and not dashboard_gone:  # the pipeline goes on without it
                print(f"the dashboard stopped (exit {dashboard.returncode}); see {logs / 'dashboard.log'}",
                      file=sys.stderr)
                dashboard_gone = True
            if producer.poll() is not None and producer.returncode != 0:
                print(f"the producer stopped (exit {producer.returncode}); see {logs / 'producer.log'}",
                      file=sys.stderr)
                code = 1
                break
    except KeyboardInterrupt:
        print("stopping: producer first, then the stream between micro-batches ...", flush=True)
    for child, stop_signal in ((producer, signal.SIGINT), (stream, signal.SIGTERM), (dashboard, signal.SIGTERM)):
        child.stop(stop_signal, patience_s=180)
    print(f"stopped. {counts(settings)}")
    return code
