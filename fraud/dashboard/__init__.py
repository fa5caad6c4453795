"""``fraud dashboard``: the built-in live dashboard (Flask), for everyone on the embedded default.

One page polls five JSON endpoints (``/api/patterns``, ``/api/alerts``,
``/api/performance``, ``/api/health``, ``/api/scoring``) every
``dashboard.refresh_seconds``. Each
endpoint answers 503 with a readable message when the service behind it is down,
and the page shows that message in the section concerned while the others keep
updating. The page renders data with ``textContent`` / SVG attributes only, so
nothing from a record is ever interpreted as HTML.
"""
from __future__ import annotations

import logging
from typing import Callable

from elasticsearch import Elasticsearch
from flask import Flask, jsonify, render_template, request

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.config import Settings
from fraud.dashboard import queries

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 5


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    index = settings.elasticsearch.index
    es: Elasticsearch = elasticsearch_client(settings).options(request_timeout=REQUEST_TIMEOUT_S)
    es_where = f"Elasticsearch at {settings.elasticsearch.url} (index {index})"
    mysql_where = f"MySQL at {settings.mysql.host}:{settings.mysql.port}/{settings.mysql.database}"

    def answer(where: str, compute: Callable[[], dict]):
        try:
            return jsonify(compute())
        except Exception as exc:  # noqa: BLE001 - any service failure becomes a message on the page
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            log.warning("%s unavailable: %s", where, reason)
            return jsonify({"error": f"{where} is unavailable: {reason}"}), 503

    @app.get("/")
    def page():
        return render_template("index.html", refresh_ms=int(settings.dashboard.refresh_seconds * 1000), index=index)

    @app.get("/api/patterns")
    def patterns():
        return answer(es_where, lambda: queries.transaction_patterns(es, index))

    @app.get("/api/alerts")
    def alerts():
        args = request.args
        decision = args.get("decision", "")
        if decision not in ("", "review", "block"):
            return jsonify({"error": "decision must be review or block"}), 400
        try:
            min_score = float(args.get("min_score") or 0)
        except ValueError:
            return jsonify({"error": "min_score must be a number"}), 400
        return answer(es_where, lambda: queries.latest_alerts(es, index, args.get("q", "")[:200], decision,
                                                              min_score))

    @app.get("/api/performance")
    def performance():
        return answer(es_where, lambda: queries.model_performance(es, index))

    @app.get("/api/health")
    def health():
        return answer(mysql_where, lambda: queries.stream_health(settings))

    @app.get("/api/scoring")
    def scoring():
        return answer(es_where, lambda: queries.scoring_status(es, index))

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the dashboard with waitress (a production WSGI server) until interrupted."""
    from waitress import serve as waitress_serve
    host, port = host or settings.dashboard.host, port or settings.dashboard.port
    log.info("dashboard on http://%s:%d (Elasticsearch %s, MySQL %s:%d)", host, port, settings.elasticsearch.url,
             settings.mysql.host, settings.mysql.port)
    waitress_serve(create_app(settings), host=host, port=port, threads=4, ident="fraud-dashboard")
