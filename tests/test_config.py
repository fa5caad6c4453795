"""Configuration loading: environment overrides, validation, secrets (pure logic)."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from fraud.config import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError, Settings, StreamConf, load_settings


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


def test_unknown_keys_are_refused_naming_them_at_any_depth(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text("base: " + str(DEFAULT_CONFIG) + "\ncolour: red\nkafka:\n  topics:\n    audit: audit\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, env={})
    assert "unknown configuration key(s) in 'top level': ['colour']" in str(raised.value)
    assert "unknown configuration key(s) in 'kafka.topics': ['audit']" in str(raised.value)


@pytest.mark.parametrize("variable, value", [("FRAUD_DASHBOARD_PORT", "0"), ("FRAUD_KAFKA_CONTROLLER_PORT", "65536"),
                                             ("FRAUD_ELASTICSEARCH_TRANSPORT_PORT", "-1")])
def test_a_port_out_of_range_is_refused(variable: str, value: str):
    key = variable.removeprefix("FRAUD_").lower().replace("_", ".", 1)
    with pytest.raises(ConfigError, match=rf"'{key}' must be a TCP port \(1-65535\), got '{value}'"):
        load_settings(env={variable: value})


def test_the_ends_of_the_port_range_are_ports():
    settings = load_settings(env={"FRAUD_DASHBOARD_PORT": "1", "FRAUD_MYSQL_PORT": "65535"})
    assert (settings.dashboard.port, settings.mysql.port) == (1, 65535)


@pytest.mark.parametrize("env, message", [
    ({"FRAUD_STREAM_DUPLICATE_DAYS": "0"}, "'stream.duplicate_days' must be at least 1, got '0'"),
    ({"FRAUD_STREAM_DELAY_DAYS": "0"}, "'stream.delay_days' must be at least 1"),
    ({"FRAUD_STREAM_DELIVERY_NICE": "20"}, "'stream.delivery_nice' must be at most 19"),
    ({"FRAUD_STREAM_REVIEW_THRESHOLD": "high"}, "'stream.review_threshold' must be a number, got 'high'"),
    ({"FRAUD_STREAM_STARTING_OFFSETS": "newest"}, "'stream.starting_offsets' must be earliest or latest"),
    ({"FRAUD_KAFKA_SECURITY_PROTOCOL": "TLS"},
     "'kafka.security_protocol' must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got 'TLS'"),
    ({"FRAUD_KAFKA_PORT": "1.5", "FRAUD_MYSQL_PORT": "x"}, "'kafka.port' must be an integer.*; 'mysql.port' must be"),
])
def test_constraints_and_choices_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


class _StreamWithFlag(StreamConf):
    verbose: bool = False


class _SettingsWithFlag(Settings):
    """No key is a boolean today: one added to see how the environment sets booleans."""
    stream: _StreamWithFlag


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("1", True), ("0", False)])
def test_a_boolean_from_the_environment_is_a_real_boolean(value: str, expected: bool):
    assert _SettingsWithFlag.load(env={"FRAUD_STREAM_VERBOSE": value}).stream.verbose is expected


def test_a_non_boolean_string_for_a_boolean_is_refused():
    with pytest.raises(ConfigError, match="'stream.verbose' must be true or false, got 'maybe'"):
        _SettingsWithFlag.load(env={"FRAUD_STREAM_VERBOSE": "maybe"})


def test_environment_reaches_every_nested_key_even_those_the_yaml_leaves_out(tmp_path: Path):
    settings = load_settings(env={
        "FRAUD_STATE_DIR": str(tmp_path),
        "FRAUD_KAFKA_TOPICS_DEADLETTER": "other.dead",  # three levels
        "FRAUD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FRAUD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",  # not in the YAML
        "FRAUD_KAFKA_SASL_USERNAME": "app", "FRAUD_KAFKA_SASL_PASSWORD": "kafka-secret",
        "FRAUD_STREAM_TRIGGER_SECONDS": "0.5", "FRAUD_STREAM_DELIVERY_TRIGGER_SECONDS": "3",  # one key ends another
        "FRAUD_STREAM_DELAY_DAYS": "3", "FRAUD_STREAM_REVIEW_THRESHOLD": "0.25",
        "FRAUD_DASHBOARD_REFRESH_SECONDS": "2.5", "FRAUD_ELASTICSEARCH_SCHEME": "https",
        "FRAUD_MYSQL_HOST": "",  # an empty variable is unset
        "FRAUD_KAFKA_COLOUR": "red", "FRAUD_CONFIG_EXTRA": "x",  # variables of no key are not configuration
    })
    assert settings.kafka.topics.deadletter == "other.dead" and settings.kafka.topics.raw == "transactions.raw"
    assert settings.kafka.client_config() == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "app", "sasl.password": "kafka-secret"}
    assert 'password="kafka-secret"' in settings.kafka.spark_options()["kafka.sasl.jaas.config"]
    assert (settings.stream.trigger_seconds, settings.stream.delivery_trigger_seconds) == (0.5, 3.0)
    assert settings.stream.delay_days == 3 and isinstance(settings.stream.delay_days, int)
    assert settings.stream.review_threshold == 0.25 and settings.stream.block_threshold is None
    assert settings.dashboard.refresh_seconds == 2.5
    assert settings.elasticsearch.url == "https://127.0.0.1:9200"
    assert settings.mysql.host == "127.0.0.1"
    assert load_settings(env={"FRAUD_STREAM_REVIEW_THRESHOLD": "null"}).stream.review_threshold is None


def test_paths_resolve_under_the_project_and_the_state_dir(tmp_path: Path):
    settings = load_settings(env={"FRAUD_STATE_DIR": "some/state", "FRAUD_DATA_DIR": str(tmp_path)})
    assert settings.state_dir == PROJECT_ROOT / "some" / "state"
    assert settings.delta_dir == settings.state_dir / "delta"
    assert settings.raw_table == str(settings.state_dir / "delta" / "transactions_raw")
    assert settings.checkpoint_dir == settings.state_dir / "stream"
    assert settings.data_dir == tmp_path
    moved = load_settings(env={"FRAUD_DELTA_DIR": str(tmp_path / "d"), "FRAUD_STREAM_CHECKPOINT_DIR": str(tmp_path)})
    assert moved.scored_table == str(tmp_path / "d" / "scored_transactions") and moved.checkpoint_dir == tmp_path


def test_secrets_are_secret_strings_never_in_repr(tmp_path: Path):
    (tmp_path / "secrets.env").write_text("FRAUD_KAFKA_SASL_PASSWORD=kafka-from-file\nFRAUD_KAFKA_PORT=1234\n")
    settings = load_settings(env={"FRAUD_STATE_DIR": str(tmp_path), "FRAUD_MYSQL_PASSWORD": "mysql-secret",
                                  "FRAUD_ELASTICSEARCH_USERNAME": "elastic",
                                  "FRAUD_ELASTICSEARCH_PASSWORD": "es-secret"})
    secrets = (settings.mysql.password, settings.kafka.sasl_password, settings.elasticsearch.password)
    assert all(isinstance(secret, SecretStr) for secret in secrets)
    assert [s.get_secret_value() for s in secrets] == ["mysql-secret", "kafka-from-file", "es-secret"]
    assert settings.kafka.port == 9092  # the secrets file holds secrets only
    for shown in (repr(settings), str(settings), repr(settings.mysql), repr(settings.kafka),
                  repr(settings.elasticsearch), settings.model_dump_json()):
        assert not any(word in shown for word in ("mysql-secret", "kafka-from-file", "es-secret")), shown


def test_a_secret_in_the_yaml_is_refused(tmp_path: Path):
    config = tmp_path / "leaky.yaml"
    config.write_text(f"base: {DEFAULT_CONFIG}\nmysql:\n  password: hunter2\n")
    with pytest.raises(ConfigError, match="'mysql.password' is a secret: set FRAUD_MYSQL_PASSWORD") as raised:
        load_settings(config, env={})
    assert "hunter2" not in str(raised.value)


def test_base_inheritance_merges_key_by_key_through_a_chain(tmp_path: Path):
    (tmp_path / "middle.yaml").write_text(f"base: {DEFAULT_CONFIG}\nkafka:\n  host: broker\n  topics:\n"
                                          "    raw: middle.raw\nstream:\n  state_shards: 8\n")
    (tmp_path / "top.yaml").write_text("base: middle.yaml\nkafka:\n  port: 29092\nstream:\n  state_shards: 4\n")
    settings = load_settings(tmp_path / "top.yaml", env={"FRAUD_KAFKA_TOPICS_LABELS": "env.labels"})
    assert settings.kafka.bootstrap_servers == "broker:29092"  # host from the middle, port from the top
    assert (settings.kafka.topics.raw, settings.kafka.topics.labels, settings.kafka.topics.scored) == (
        "middle.raw", "env.labels", "transactions.scored")  # the environment wins over every file
    assert settings.stream.state_shards == 4 and settings.stream.delay_days == 7  # local.yaml at the bottom
    cluster = load_settings(DEFAULT_CONFIG.parent / "cluster.yaml", env={})
    assert (cluster.spark.shuffle_partitions, cluster.spark.master) == (16, "local[2]")
    assert cluster.state_dir == Path("/shared/fraud")


def test_a_missing_base_is_a_config_error(tmp_path: Path):
    (tmp_path / "orphan.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="configuration file not found: .*nowhere.yaml"):
        load_settings(tmp_path / "orphan.yaml", env={})


def test_fraud_config_names_the_file_and_settings_are_frozen():
    settings = load_settings(env={"FRAUD_CONFIG": str(DEFAULT_CONFIG.parent / "docker.yaml")})
    assert settings.kafka.host == "kafka"
    with pytest.raises(ValidationError):
        settings.kafka.port = 1  # type: ignore[misc]


def test_malformed_yaml_and_a_base_cycle_are_config_errors(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("stream: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_settings(tmp_path / "bad.yaml", env={})
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_settings(tmp_path / "a.yaml", env={})
