"""What the dashboard shows, as JSON-ready dicts: Elasticsearch aggregations over the scored index
(patterns, alerts, model performance as labels arrive) and MySQL (stream progress, dead letters).

Every figure is computed by the services (aggregations, indexed SQL), not by
pulling documents into Python (the one exception: latency percentiles over a
sample of the newest LATENCY_SAMPLE documents), so a page stays fast as the index
grows. Times are
event times (``tx_datetime``) relative to the newest transaction, so a replay of
2018 and a live stream read the same way.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
from elasticsearch import Elasticsearch

from fraud.clients.elasticsearch import SCORED
from fraud.clients.mysql import connect
from fraud.config import Settings

LABELLED = [SCORED, {"exists": {"field": "tx_fraud"}}]
FLAGGED = {"terms": {"decision": ["review", "block"]}}
ALERT_FIELDS = ["transaction_id", "tx_datetime", "scored_at", "customer_id", "terminal_id", "tx_amount",
                "fraud_score", "decision", "reason_codes", "model_version", "tx_fraud"]
LATENCY_SAMPLE = 2000
SCORE_BIN = 0.001  # average precision from score histograms: exact up to ties within a bin


def _newest(es: Elasticsearch, index: str, filters: list[dict]) -> datetime | None:
    """The newest event time among the documents matching ``filters``."""
    result = es.search(index=index, size=0, query={"bool": {"filter": filters}},
                       aggs={"newest": {"max": {"field": "tx_datetime"}}})
    value = result["aggregations"]["newest"].get("value_as_string")
    return _time(value) if value else None


def _window(end: datetime, span: timedelta) -> dict:
    return {"range": {"tx_datetime": {"gt": (end - span).isoformat(), "lte": end.isoformat()}}}


def transaction_patterns(es: Elasticsearch, index: str) -> dict:
    """Transactions and amounts per 30 minutes over the last day; decisions per 3 hours and the hour-of-day
    profile over the last 7 days (event time, up to the newest scored transaction)."""
    end = _newest(es, index, [SCORED])
    if end is None:
        return {"window_end": None, "timeline": [], "decisions": [], "by_hour": []}
    result = es.search(
        index=index, size=0, query={"bool": {"filter": [SCORED, _window(end, timedelta(days=7))]}},
        aggs={"last_day": {"filter": _window(end, timedelta(days=1)), "aggs": {"timeline": {
                  "date_histogram": {"field": "tx_datetime", "fixed_interval": "30m"},
                  "aggs": {"amount": {"sum": {"field": "tx_amount"}}}}}},
              "decisions": {"date_histogram": {"field": "tx_datetime", "fixed_interval": "3h"},
                            "aggs": {"decision": {"terms": {"field": "decision", "size": 3}}}},
              "hourly": {"date_histogram": {"field": "tx_datetime", "fixed_interval": "1h"},  # folded by hour below
                         "aggs": {"amount": {"sum": {"field": "tx_amount"}}}}})
    aggs = result["aggregations"]
    timeline = [{"time": b["key_as_string"], "count": b["doc_count"], "amount": round(b["amount"]["value"], 2)}
                for b in aggs["last_day"]["timeline"]["buckets"]]
    decisions = [{"time": b["key_as_string"], **{d: 0 for d in ("approve", "review", "block")},
                  **{d["key"]: d["doc_count"] for d in b["decision"]["buckets"]}} for b in aggs["decisions"]["buckets"]]
    counts, amounts = [0] * 24, [0.0] * 24
    for b in aggs["hourly"]["buckets"]:  # no scripts: the local Elasticsearch has no painless module
        hour = _time(b["key_as_string"]).hour
        counts[hour] += b["doc_count"]
        amounts[hour] += b["amount"]["value"]
    return {"window_end": end.isoformat(), "timeline": timeline, "decisions": decisions,
            "by_hour": [{"hour": h, "count": counts[h], "avg_amount": round(amounts[h] / counts[h], 2) if counts[h]
                         else 0} for h in range(24)]}


def latest_alerts(es: Elasticsearch, index: str, search: str = "", decision: str = "", min_score: float = 0.0,
                  size: int = 50) -> dict:
    """The newest review/block decisions (or ``decision`` only), newest scoring first. ``search``: an exact
    transaction, customer or terminal id (text, as sent), or words of the reason codes."""
    filters: list[dict] = [{"term": {"decision": decision}} if decision else FLAGGED,
                           {"range": {"fraud_score": {"gte": min_score}}}]
    search = search.strip()
    if search:
        filters.append({"bool": {"should": [
            *({"term": {field: search}} for field in ("transaction_id", "customer_id", "terminal_id")),
            {"simple_query_string": {"query": search, "fields": ["reason_codes"], "default_operator": "and"}}]}})
    # source: the client's stubs type it as bool or a mapping; Elasticsearch takes a list of fields too
    result = es.search(index=index, size=size, query={"bool": {"filter": filters}},
                       source=ALERT_FIELDS,  # type: ignore[arg-type]
                       sort=[{"scored_at": "desc"}, {"transaction_id": "desc"}], track_total_hits=True)
    alerts = [{**hit["_source"], **{field: _time(hit["_source"][field]).isoformat(timespec="milliseconds")
                                    for field in ("tx_datetime", "scored_at") if field in hit["_source"]}}
              for hit in result["hits"]["hits"]]
    return {"total": result["hits"]["total"]["value"], "alerts": alerts}


def average_precision(fraud_bins: dict[float, int], genuine_bins: dict[float, int]) -> float | None:
    """Average precision from per-class counts of scores by bin: thresholds walk the bins from the highest score
    down; AP = sum over bins of (recall gained) x (precision at that bin)."""
    frauds = sum(fraud_bins.values())
    if not frauds:
        return None
    caught = flagged = 0
    ap = 0.0
    for score in sorted(set(fraud_bins) | set(genuine_bins), reverse=True):
        hits = fraud_bins.get(score, 0)
        caught, flagged = caught + hits, flagged + hits + genuine_bins.get(score, 0)
        ap += hits / frauds * caught / flagged
    return ap


def model_performance(es: Elasticsearch, index: str, days: int = 7) -> dict:
    """Over the last ``days`` days of labelled transactions (labels arrive late): precision and recall of the
    review/block decisions per day, average precision, the decision x label matrix and the score distribution
    by class."""
    end = _newest(es, index, LABELLED)
    if end is None:
        return {"window_end": None, "labelled": 0, "daily": [], "matrix": {}, "distribution": [],
                "average_precision": None, "precision": None, "recall": None}
    outcome = {"filters": {"filters": {
        "caught": {"bool": {"filter": [FLAGGED, {"term": {"tx_fraud": 1}}]}},
        "false_alarm": {"bool": {"filter": [FLAGGED, {"term": {"tx_fraud": 0}}]}},
        "missed": {"bool": {"filter": [{"term": {"tx_fraud": 1}}], "must_not": [FLAGGED]}}}}}
    result = es.search(
        index=index, size=0, track_total_hits=True,
        query={"bool": {"filter": [*LABELLED, _window(end, timedelta(days=days))]}},
        aggs={"outcome": outcome,
              "daily": {"date_histogram": {"field": "tx_datetime", "calendar_interval": "day"},
                        "aggs": {"outcome": outcome}},
              "matrix": {"terms": {"field": "decision", "size": 3},
                         "aggs": {"label": {"terms": {"field": "tx_fraud", "size": 2}}}},
              "label": {"terms": {"field": "tx_fraud", "size": 2},
                        "aggs": {"scores": {"histogram": {"field": "fraud_score", "interval": SCORE_BIN,
                                                          "min_doc_count": 1}}}}})
    aggs = result["aggregations"]
    daily = [{"day": b["key_as_string"][:10], "labelled": b["doc_count"], **_rates(b["outcome"]["buckets"])}
             for b in aggs["daily"]["buckets"]]
    matrix = {d["key"]: {("fraud" if label["key"] == 1 else "genuine"): label["doc_count"]
                         for label in d["label"]["buckets"]} for d in aggs["matrix"]["buckets"]}
    bins = {("fraud" if b["key"] == 1 else "genuine"): {round(s["key"], 3): s["doc_count"]
                                                       for s in b["scores"]["buckets"]}
            for b in aggs["label"]["buckets"]}
    fraud, genuine = bins.get("fraud", {}), bins.get("genuine", {})
    coarse = {name: _coarse(counts) for name, counts in (("fraud", fraud), ("genuine", genuine))}
    distribution = [{"score_from": round(i / 20, 2), "fraud": coarse["fraud"][i], "genuine": coarse["genuine"][i]}
                    for i in range(20)]
    return {"window_end": end.isoformat(), "days": days, "labelled": result["hits"]["total"]["value"],
            "daily": daily, "matrix": matrix, "distribution": distribution,
            "average_precision": average_precision(fraud, genuine), **_rates(aggs["outcome"]["buckets"])}


def _coarse(bins: dict[float, int], width: float = 0.05) -> list[int]:
    """Re-bin fine score bins into ``1 / width`` bars (a score of 1.0 falls in the last one)."""
    counts = [0] * round(1 / width)
    for score, n in bins.items():
        counts[min(int(score / width + 1e-9), len(counts) - 1)] += n
    return counts


def _rates(outcome: dict) -> dict:
    caught, false_alarm, missed = (outcome[k]["doc_count"] for k in ("caught", "false_alarm", "missed"))
    return {"caught": caught, "false_alarms": false_alarm, "missed": missed,
            "precision": caught / (caught + false_alarm) if caught + false_alarm else None,
            "recall": caught / (caught + missed) if caught + missed else None}


def scoring_status(es: Elasticsearch, index: str) -> dict:
    """Documents, the model version of the newest score, and the latency percentiles from Kafka to the decision on
    the result topic (``decided_at``) of the newest LATENCY_SAMPLE scored transactions."""
    # source (twice): the client's stubs type it as bool or a mapping; Elasticsearch takes a list of fields too
    newest = es.search(index=index, size=1, query={"bool": {"filter": [SCORED]}}, sort=[{"scored_at": "desc"}],
                       source=["model_version", "scored_at"], track_total_hits=True)  # type: ignore[arg-type]
    hits = newest["hits"]["hits"]
    if not hits:
        return {"scored": 0, "model_version": None, "scored_at": None, "latency_s": None}
    recent = es.search(index=index, size=LATENCY_SAMPLE, sort=[{"scored_at": "desc"}],
                       query={"bool": {"filter": [SCORED, {"exists": {"field": "kafka_timestamp"}},
                                                  {"exists": {"field": "decided_at"}}]}},
                       source=["decided_at", "kafka_timestamp"])["hits"]["hits"]  # type: ignore[arg-type]
    seconds = pd.Series([(_time(h["_source"]["decided_at"]) - _time(h["_source"]["kafka_timestamp"])).total_seconds()
                         for h in recent])
    return {"scored": newest["hits"]["total"]["value"], "model_version": hits[0]["_source"]["model_version"],
            "scored_at": _time(hits[0]["_source"]["scored_at"]).isoformat(timespec="milliseconds"),
            "latency_s": {f"p{q}": float(seconds.quantile(q / 100)) for q in (50, 95, 99)} if len(seconds) else None}


def _time(value: str | int) -> datetime:
    """A date of a document or an aggregation as naive UTC: the Spark connector stores epoch milliseconds,
    other writers ISO strings."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc).replace(tzinfo=None)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed


def stream_health(settings: Settings, minutes: int = 30) -> dict:
    """Micro-batches of the last ``minutes`` (per query: duration, rows/s, offsets behind, and the decision query's
    state size: keys, history records, bytes), the newest one and the newest that read records (Spark also runs
    empty batches), and dead letters."""
    with connect(settings, connection_timeout=5) as conn, conn.cursor(dictionary=True) as cur:
        cur.execute("SELECT MAX(reported_at) AS newest FROM stream_progress")
        newest = cur.fetchone()["newest"]
        batches = []
        if newest is not None:
            cur.execute("SELECT query_name, batch_id, reported_at, input_rows, processed_rows_per_second, "
                        "duration_ms, offsets_behind, state_keys, state_records, state_bytes FROM stream_progress "
                        "WHERE reported_at >= %s "
                        "ORDER BY reported_at", (newest - timedelta(minutes=minutes),))
            batches = [{**row, "reported_at": row["reported_at"].isoformat()} for row in cur.fetchall()]
        cur.execute("SELECT COUNT(*) AS n FROM dead_letters")
        dead_letters = cur.fetchone()["n"]
        cur.execute("SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason ORDER BY n DESC LIMIT 5")
        reasons = cur.fetchall()
    latest = {row["query_name"]: row for row in batches}  # newest last
    with_data = {row["query_name"]: row for row in batches if row["input_rows"]}
    return {"batches": batches, "latest": latest, "latest_with_data": with_data, "dead_letters": dead_letters,
            "dead_letter_reasons": reasons}
