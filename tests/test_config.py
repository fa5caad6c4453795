"""Configuration loading: environment overrides, validation, secrets (pure logic)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fraud.config import DEFAULT_CONFIG, ConfigError, load_settings


def test_defaults_come_from_conf_local_yaml(tmp_path: Path):
    settings = load_settings(env={"FRAUD_STATE_DIR": str(tmp_path)})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.elasticsearch.url == "http://127.0.0.1:9200"
    assert settings.mysql.port == 3306
    assert settings.kafka.topics.raw == "transactions.raw"
    assert settings.mysql.password.get_secret_value() == ""  # nothing in the environment nor a secrets file yet


def test_environment_overrides_nested_keys(tmp_path: Path):
    settings = load_settings(env={"FRAUD_STATE_DIR": str(tmp_path), "FRAUD_KAFKA_PORT": "19092",
                                  "FRAUD_KAFKA_TOPICS_RAW": "other.raw", "FRAUD_SPARK_SHUFFLE_PARTITIONS": "8"})
    assert settings.kafka.port == 19092
    assert settings.kafka.topics.raw == "other.raw"
    assert settings.spark.shuffle_partitions == 8
    assert settings.state_dir == tmp_path


def test_password_from_secrets_file_unless_environment_sets_it(tmp_path: Path):
    (tmp_path / "secrets.env").write_text("FRAUD_MYSQL_PASSWORD=from-file\n")
    assert load_settings(env={"FRAUD_STATE_DIR": str(tmp_path)}).mysql.password.get_secret_value() == "from-file"
    env = {"FRAUD_STATE_DIR": str(tmp_path), "FRAUD_MYSQL_PASSWORD": "from-env"}
    settings = load_settings(env=env)
    assert settings.mysql.password.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize("env, message", [
    ({"FRAUD_KAFKA_PORT": "ninety"}, "'kafka.port' must be an integer"),
    ({"FRAUD_MYSQL_PORT": "70000"}, "'mysql.port' must be a TCP port"),
    ({"FRAUD_KAFKA_PARTITIONS": "0"}, "'kafka.partitions' must be at least 1"),
    ({"FRAUD_STREAM_STATE_SHARDS": "0"}, "'stream.state_shards' must be at least 1"),
    ({"FRAUD_STREAM_ON_DATA_LOSS": "ignore"}, "'stream.on_data_loss' must be stop or skip"),
])
def test_bad_values_fail_naming_the_key(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_unknown_and_missing_keys_are_reported(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text(DEFAULT_CONFIG.read_text().replace("  heap_mb: 768\n", "  heap_mb: 768\n  colour: red\n"))
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\) in 'kafka': \['colour'\]"):
        load_settings(config, env={})
    config.write_text(DEFAULT_CONFIG.read_text().replace("  database: fraud\n", ""))
    with pytest.raises(ConfigError, match="missing configuration key 'mysql.database'"):
        load_settings(config, env={})


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize("name", ["local", "docker", "cluster"])
def test_every_shipped_configuration_loads(name: str):
    settings = load_settings(DEFAULT_CONFIG.parent / f"{name}.yaml", env={})
    assert settings.kafka.topics.scored == "transactions.scored"  # inherited from local.yaml
    assert settings.stream.delay_days == 7


def test_docker_configuration_names_the_compose_services():
    settings = load_settings(DEFAULT_CONFIG.parent / "docker.yaml", env={})
    assert (settings.kafka.host, settings.mysql.host, settings.elasticsearch.host) == ("kafka", "mysql",
                                                                                       "elasticsearch")
    assert settings.kafka.port == 19092 and settings.mysql.port == 3306
