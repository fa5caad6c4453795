"""Idempotent bootstrap of what the pipeline expects to exist: topics, tables, index.

Safe to run any number of times (``fraud init``; ``fraud stack up`` calls it).
The DDL and the index template are kept in ``conf/`` so the compose stack uses
the very same definitions. It also migrates what an older version created: MySQL
columns whose type changed (the ids, BIGINT before they were text) are altered in
place; an Elasticsearch index whose ids are not ``keyword`` is made anew when empty,
and otherwise refused with the steps to migrate it (a mapping cannot change).
"""
from __future__ import annotations

import json
import re

from confluent_kafka.admin import NewTopic

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import kafka_admin
from fraud.clients.mysql import connect
from fraud.config import CONF_DIR, Settings
from fraud.schemas import ID_FIELDS

SCHEMA_SQL = CONF_DIR / "mysql" / "schema.sql"
INDEX_TEMPLATE = CONF_DIR / "elasticsearch" / "transactions-scored.template.json"


class MigrationError(RuntimeError):
    """What an older version created cannot be migrated in place; the message says how to do it."""


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


def create_tables(settings: Settings) -> dict[str, list[str]]:
    """Create the missing tables; to existing ones add the columns added to the DDL since they were created
    (``ALTER TABLE ... ADD COLUMN``) and give the DDL's definition to columns of another type (``MODIFY COLUMN``:
    BIGINT ids become text, each value its decimal text), both valid on MariaDB and MySQL 8. Returns the columns
    "added" and "changed" (table.column)."""
    done: dict[str, list[str]] = {"added": [], "changed": []}
    with connect(settings) as conn, conn.cursor() as cur:
        for statement in sql_statements(SCHEMA_SQL.read_text()):
            cur.execute(statement)
            table = column_definitions(statement)
            if table is None:
                continue
            name, columns = table
            cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                        "DATABASE() AND table_name = %s", (name,))
            present = {column.lower(): kind.lower() for column, kind in cur.fetchall()}
            changes = []
            for column, definition in columns.items():
                wanted = definition.split()[1].split("(")[0].lower()  # e.g. VARCHAR(128) -> varchar
                if column.lower() not in present:
                    changes.append(f"ADD COLUMN {definition}")
                    done["added"].append(f"{name}.{column}")
                elif present[column.lower()] != wanted:
                    changes.append(f"MODIFY COLUMN {definition}")
                    done["changed"].append(f"{name}.{column}")
            if changes:  # one statement: a single rebuild of the table
                cur.execute(f"ALTER TABLE {name} {', '.join(changes)}")
    return done


def create_index(settings: Settings) -> bool:
    """Install the index template and the first index behind the alias; True if created. An existing index
    gets the fields added to the template since it was created (a mapping only ever grows). An index whose id
    fields are not ``keyword`` (made when ids were ``long``) is deleted and made anew when it holds no document.

    Raises MigrationError when such an index holds documents: the message gives the steps to reindex it."""
    es = elasticsearch_client(settings)
    alias = settings.elasticsearch.index
    template = json.loads(INDEX_TEMPLATE.read_text())
    template["index_patterns"] = [f"{alias}-*"]
    properties = template["template"]["mappings"]["properties"]
    es.indices.put_index_template(name=alias, **template)
    if es.indices.exists_alias(name=alias):
        for index, mapping in es.indices.get_mapping(index=alias).items():
            fields = mapping["mappings"].get("properties", {})
            old = {name: fields[name]["type"] for name in ID_FIELDS
                   if name in fields and fields[name].get("type") != properties[name]["type"]}
            if not old:
                continue
            if es.count(index=index)["count"]:
                raise MigrationError(_reindex_steps(alias, index, old))
            write = es.indices.get_alias(index=index, name=alias)[index]["aliases"][alias].get("is_write_index")
            es.indices.delete(index=index)
            es.indices.create(index=index, aliases={alias: {"is_write_index": bool(write)}})
        es.indices.put_mapping(index=alias, properties=properties)
        return False
    es.indices.create(index=f"{alias}-000001", aliases={alias: {"is_write_index": True}})
    return True


def _reindex_steps(alias: str, index: str, old: dict[str, str]) -> str:
    number = re.search(r"(\d+)$", index)
    new = f"{alias}-{int(number.group(1)) + 1 if number else 2:06d}"
    swap = {"actions": [{"remove": {"index": index, "alias": alias}},
                        {"add": {"index": new, "alias": alias, "is_write_index": True}}]}
    return (f"Elasticsearch index {index} (alias {alias}) maps {old} but ids are text (keyword) now, and a mapping "
            f"cannot change. With the stream stopped: PUT /{new} (the template maps ids as keyword); POST /_reindex "
            f"{json.dumps({'source': {'index': index}, 'dest': {'index': new}})}; POST /_aliases {json.dumps(swap)}; "
            f"DELETE /{index}; then `fraud init` again. Without _reindex (the local stack's node), DELETE /{index} "
            f"and run `fraud init`, then refill it: `fraud backfill --sinks elasticsearch` over the history.")


def bootstrap(settings: Settings) -> dict[str, object]:
    """Create topics, tables and the index as needed, migrating what an older version made; returns what it did.

    Raises MigrationError for an Elasticsearch index that must be migrated by hand (``create_index``)."""
    created_topics = create_topics(settings)
    columns = create_tables(settings)
    created_index = create_index(settings)
    return {"topics_created": created_topics, "columns_added": columns["added"], "columns_changed": columns["changed"],
            "index_created": created_index}
