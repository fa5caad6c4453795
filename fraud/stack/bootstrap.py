"""Idempotent bootstrap of what the pipeline expects to exist: topics, tables, index.

Safe to run any number of times (``fraud init``; ``fraud stack up`` calls it).
The DDL and the index template are kept in ``conf/`` so the compose stack uses
the very same definitions.
"""
from __future__ import annotations

import json
import re

from confluent_kafka.admin import AdminClient, NewTopic

from fraud.config import CONF_DIR, Settings
from fraud.stack.elasticsearch import elasticsearch_client
from fraud.stack.mariadb import connect

SCHEMA_SQL = CONF_DIR / "mysql" / "schema.sql"
INDEX_TEMPLATE = CONF_DIR / "elasticsearch" / "transactions-scored.template.json"


def create_topics(settings: Settings) -> list[str]:
    """Create the four topics that are missing; returns the names it created."""
    admin = AdminClient(settings.kafka.client_config())
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(name, num_partitions=settings.kafka.partitions, replication_factor=1)
              for name in vars(settings.kafka.topics).values() if name not in existing]
    if wanted:
        for future in admin.create_topics(wanted, operation_timeout=30).values():
            future.result()
    return [topic.topic for topic in wanted]


def sql_statements(text: str) -> list[str]:
    """Split a DDL file into statements (no procedures here, so ';' ends each)."""
    without_comments = re.sub(r"--[^\n]*", "", text)
    return [stmt.strip() for stmt in without_comments.split(";") if stmt.strip()]


def create_tables(settings: Settings) -> None:
    with connect(settings) as conn, conn.cursor() as cur:
        for statement in sql_statements(SCHEMA_SQL.read_text()):
            cur.execute(statement)


def create_index(settings: Settings) -> bool:
    """Install the index template and the first index behind the alias; True if created. An existing index
    gets the fields added to the template since it was created (a mapping only ever grows)."""
    es = elasticsearch_client(settings)
    alias = settings.elasticsearch.index
    template = json.loads(INDEX_TEMPLATE.read_text())
    template["index_patterns"] = [f"{alias}-*"]
    es.indices.put_index_template(name=alias, **template)
    if es.indices.exists_alias(name=alias):
        es.indices.put_mapping(index=alias, properties=template["template"]["mappings"]["properties"])
        return False
    es.indices.create(index=f"{alias}-000001", aliases={alias: {"is_write_index": True}})
    return True


def bootstrap(settings: Settings) -> dict[str, object]:
    """Create topics, tables and the index as needed; returns what it did."""
    created_topics = create_topics(settings)
    create_tables(settings)
    created_index = create_index(settings)
    return {"topics_created": created_topics, "index_created": created_index}
