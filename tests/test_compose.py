"""docker-compose.yml agrees with conf/ (no Docker engine here, so this is checked statically)."""
from __future__ import annotations

import re

import yaml

from fraud.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def published_port(service: str) -> int:
    return int(COMPOSE["services"][service]["ports"][0].split(":")[0])


def test_services_publish_the_configured_ports():
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert published_port("kafka") == settings.kafka.port
    assert published_port("elasticsearch") == settings.elasticsearch.port
    assert published_port("mysql") == settings.mysql.port


def test_mysql_database_user_and_ddl_match_the_configuration():
    settings = load_settings(DEFAULT_CONFIG, env={})
    mysql = COMPOSE["services"]["mysql"]
    assert mysql["environment"]["MYSQL_DATABASE"] == settings.mysql.database
    assert mysql["environment"]["MYSQL_USER"] == settings.mysql.user
    assert "${FRAUD_MYSQL_PASSWORD" in mysql["environment"]["MYSQL_PASSWORD"]  # never a literal secret
    assert "./conf/mysql/schema.sql:/docker-entrypoint-initdb.d/10-schema.sql:ro" in mysql["volumes"]


def test_elasticsearch_and_kafka_versions_match_the_local_stack():
    es_image = COMPOSE["services"]["elasticsearch"]["image"]
    es_home_pom = (PROJECT_ROOT / "jvm" / "elasticsearch" / "pom.xml").read_text()
    connector_pom = (PROJECT_ROOT / "jvm" / "spark" / "pom.xml").read_text()
    server = re.search(r"<es.version>([\d.]+)<", es_home_pom).group(1)
    connector = re.search(r"<elasticsearch.version>([\d.]+)<", connector_pom).group(1)
    assert es_image.endswith(f":{server}")
    assert server.split(".")[0] == connector.split(".")[0] == "8"
    kafka_pom = (PROJECT_ROOT / "jvm" / "kafka" / "pom.xml").read_text()
    kafka = re.search(r"<kafka.version>([\d.]+)<", kafka_pom).group(1)
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{kafka}"
