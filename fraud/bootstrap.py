"""Idempotent bootstrap of what the pipeline expects to exist: topics, tables, index.

Safe to run any number of times (``fraud init``; ``fraud stack up`` calls it).
The DDL and the index template are kept in ``conf/`` so the compose stack uses
the very same definitions.
"""
from __future__ import annotations

import json
import re

from confluent_kafka.admin import NewTopic

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import kafka_admin
from fraud.clients.mysql import connect
from fraud.config import CONF_DIR, Settings

SCHEMA_SQL = CONF_DIR / "mysql" / "schema.sql"
INDEX_TEMPLATE = CONF_DIR / "elasticsearch" / "transactions-scored.template.json"


def create_topics(settings: Settings) -> list[str]:
    """Create the four topics that are missing; returns the names it created."""
    admin = kafka_admin(settings)
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


def column_definitions(statement: str) -> tuple[str, dict[str, str]] | None:
    """A CREATE TABLE statement -> (table, column name -> its definition); None for any other statement."""
    match = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)[^)]*$", statement, re.S)
    if not match:
        return None
    lines = (line.strip().rstrip(",") for line in match.group(2).splitlines())
    return match.group(1), {line.split()[0]: line for line in lines
                            if line and not re.match(r"(PRIMARY|UNIQUE|KEY|INDEX)\b", line)}


def create_tables(settings: Settings) -> list[str]:
    """Create the missing tables, and add to existing ones the columns added to the DDL since they were created
    (``ALTER TABLE ... ADD COLUMN``, valid on MariaDB and MySQL 8); returns the columns added."""
    added = []
    with connect(settings) as conn, conn.cursor() as cur:
        for statement in sql_statements(SCHEMA_SQL.read_text()):
            cur.execute(statement)
            table = column_definitions(statement)
            if table is None:
                continue
            name, columns = table
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                        "AND table_name = %s", (name,))
            present = {row[0].lower() for row in cur.fetchall()}
            for column, definition in columns.items():
                if column.lower() not in present:
                    cur.execute(f"ALTER TABLE {name} ADD COLUMN {definition}")
                    added.append(f"{name}.{column}")
    return added


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
    added_columns = create_tables(settings)
    created_index = create_index(settings)
    return {"topics_created": created_topics, "columns_added": added_columns, "index_created": created_index}
