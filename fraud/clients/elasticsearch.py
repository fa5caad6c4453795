"""The Elasticsearch client (``elasticsearch.*`` settings), and the filter of scored documents."""
from __future__ import annotations

from elasticsearch import Elasticsearch

from fraud.config import Settings

# the query filter of scored documents: a label can create its transaction's document before the score arrives
SCORED = {"exists": {"field": "decision"}}


def elasticsearch_client(settings: Settings) -> Elasticsearch:
    conf = settings.elasticsearch
    return Elasticsearch(conf.url, request_timeout=30,
                         basic_auth=(conf.username, conf.password.get_secret_value()) if conf.username else None)
