"""Typed configuration: one frozen dataclass tree loaded from ``conf/*.yaml``.

Values come from the YAML file, then from ``FRAUD_*`` environment variables
(``FRAUD_KAFKA_PORT=19092`` overrides ``kafka.port``), so tests, CI and users can
move ports and state without editing files. Everything is validated at load time
so bad configuration fails at start-up with a message naming the key.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, get_type_hints

import yaml

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]
# imported from a zip (spark-submit --py-files), the project is the working directory
PROJECT_ROOT = _PACKAGE_PARENT if _PACKAGE_PARENT.is_dir() else Path.cwd()
CONF_DIR = PROJECT_ROOT / "conf"
DEFAULT_CONFIG = CONF_DIR / "local.yaml"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "fdh"


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the offending key."""


@dataclass(frozen=True)
class Topics:
    raw: str
    labels: str
    scored: str
    deadletter: str


@dataclass(frozen=True)
class KafkaConf:
    host: str
    port: int
    controller_port: int
    heap_mb: int
    partitions: int
    topics: Topics
    security_protocol: str = "PLAINTEXT"  # or SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "PLAIN"         # or SCRAM-SHA-256, SCRAM-SHA-512
    ssl_ca_location: str = ""             # PEM file of the CA for SSL / SASL_SSL
    sasl_username: str = ""
    sasl_password: str = dataclasses.field(default="", repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def client_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) settings: servers and, when configured, TLS and SASL."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        if self.security_protocol.startswith("SASL"):
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                           "sasl.password": self.sasl_password})
        return config

    def spark_options(self) -> dict[str, str]:
        """The same settings as Spark Kafka source/sink options (``kafka.`` + the Java client's names)."""
        options = {"kafka.bootstrap.servers": self.bootstrap_servers,
                   "kafka.security.protocol": self.security_protocol}
        if self.ssl_ca_location:
            options.update({"kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": self.ssl_ca_location})
        if self.security_protocol.startswith("SASL"):
            module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if self.sasl_mechanism == "PLAIN"
                      else "org.apache.kafka.common.security.scram.ScramLoginModule")
            options.update({"kafka.sasl.mechanism": self.sasl_mechanism,
                            "kafka.sasl.jaas.config": f'{module} required username={json.dumps(self.sasl_username)} '
                                                      f'password={json.dumps(self.sasl_password)};'})
        return options


@dataclass(frozen=True)
class ElasticsearchConf:
    host: str
    port: int
    transport_port: int
    heap_mb: int
    index: str
    scheme: str = "http"
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class MysqlConf:
    host: str
    port: int
    database: str
    user: str
    password: str = dataclasses.field(default="", repr=False)

    @property
    def jdbc_url(self) -> str:
        # jdbc:mysql:// makes Spark pick its MySQL dialect; permitMysqlScheme lets the
        # MariaDB driver (jvm/spark/pom.xml says why that driver) accept it.
        return f"jdbc:mysql://{self.host}:{self.port}/{self.database}?permitMysqlScheme"

    jdbc_driver = "org.mariadb.jdbc.Driver"


@dataclass(frozen=True)
class SparkConf:
    master: str
    driver_memory: str
    shuffle_partitions: int
    arrow_batch_rows: int         # rows per Arrow batch to pandas UDFs (spark.sql.execution.arrow.maxRecordsPerBatch)


@dataclass(frozen=True)
class StreamConf:
    model: str                    # a model folder, or a folder of them (the newest is served and hot-reloaded)
    checkpoint_dir: str           # relative paths are under state_dir
    trigger_seconds: float        # decision query: 0 = the next micro-batch as soon as the previous one is done
    delivery_trigger_seconds: float  # delivery query (MySQL, Elasticsearch, Delta): its micro-batch interval
    delivery_nice: int            # the delivery process's CPU niceness (0-19); above 0 it yields to the decisions
    max_offsets_per_trigger: int
    state_shards: int             # hash partitions of the card and terminal state; fixed for the life of the state
    shuffle_partitions: int       # the stream's other shuffles (the delivery query's deduplication)
    starting_offsets: str         # earliest | latest, for a new checkpoint
    delay_days: int
    duplicate_days: int = 180     # event time a decided transaction id is remembered for: a resend is not decided twice
    on_data_loss: str = "stop"    # records deleted by Kafka before the stream read them: stop | skip (and log)
    review_threshold: float | None = None  # null = the model's own thresholds
    block_threshold: float | None = None


@dataclass(frozen=True)
class DashboardConf:
    host: str                     # 127.0.0.1: only this machine; 0.0.0.0 inside a container
    port: int
    refresh_seconds: float        # how often the page polls for new data


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    data_dir: Path | None
    delta_dir: Path
    kafka: KafkaConf
    elasticsearch: ElasticsearchConf
    mysql: MysqlConf
    spark: SparkConf
    stream: StreamConf
    dashboard: DashboardConf

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"

    @property
    def scored_table(self) -> str:
        return str(self.delta_dir / "scored_transactions")

    @property
    def raw_table(self) -> str:
        return str(self.delta_dir / "transactions_raw")

    @property
    def labels_table(self) -> str:
        return str(self.delta_dir / "labels")

    @property
    def checkpoint_dir(self) -> Path:
        path = Path(self.stream.checkpoint_dir)
        return path if path.is_absolute() else self.state_dir / path


# credentials: from the environment or <state_dir>/secrets.env, never from conf/
SECRETS = {("mysql", "password"): "FRAUD_MYSQL_PASSWORD",
           ("kafka", "sasl_password"): "FRAUD_KAFKA_SASL_PASSWORD",
           ("elasticsearch", "password"): "FRAUD_ELASTICSEARCH_PASSWORD"}


def _read_secrets_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _apply_env(tree: dict[str, Any], env: Mapping[str, str], prefix: str = "FRAUD") -> dict[str, Any]:
    """Override leaves of ``tree`` with ``FRAUD_<SECTION>_<KEY>`` variables."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}_{key.upper()}"
        if isinstance(value, dict):
            out[key] = _apply_env(value, env, name)
        else:
            out[key] = env.get(name, value)
    return out


def _build(cls, values: Mapping[str, Any], where: str):
    """Instantiate dataclass ``cls`` from ``values``, coercing and naming bad keys."""
    kwargs = {}
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = f"{where}.{field.name}" if where else field.name
        if field.name not in values:
            if field.default is not dataclasses.MISSING:
                continue
            raise ConfigError(f"missing configuration key '{key}'")
        raw = values[field.name]
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"'{key}' must be a mapping")
            kwargs[field.name] = _build(kind, raw, key)
        elif kind in (int, float, float | None):
            if raw in (None, "", "null") and kind == float | None:
                kwargs[field.name] = None
                continue
            number = int if kind is int else float
            try:
                kwargs[field.name] = number(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"'{key}' must be {'an integer' if kind is int else 'a number'}, got {raw!r}") \
                    from None
        else:
            kwargs[field.name] = raw
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown configuration key(s) in '{where or 'top level'}': {sorted(unknown)}")
    return cls(**kwargs)


def _resolve(path: str | None) -> Path | None:
    if path in (None, "", "null"):
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def _read_tree(path: Path) -> dict[str, Any]:
    """The YAML mapping at ``path``; a ``base:`` key names a file it overrides (deep-merged)."""
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    tree = yaml.safe_load(path.read_text()) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping")
    base = tree.pop("base", None)
    return _merge(_read_tree(path.parent / base), tree) if base else tree


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate settings from ``path`` (default ``$FRAUD_CONFIG`` or conf/local.yaml)."""
    env = os.environ if env is None else env
    tree = _apply_env(_read_tree(Path(path or env.get("FRAUD_CONFIG") or DEFAULT_CONFIG)), env)

    state_dir = _resolve(tree.pop("state_dir", None)) or PROJECT_ROOT / ".state"
    data_dir = _resolve(tree.pop("data_dir", None))
    delta_dir = _resolve(tree.pop("delta_dir", None)) or state_dir / "delta"
    if data_dir is None and SHARED_DATA_DIR.is_dir():
        data_dir = SHARED_DATA_DIR
    secrets = _read_secrets_file(state_dir / "secrets.env")
    for (section, key), variable in SECRETS.items():  # never from the YAML
        tree[section] = {**(tree.get(section) or {}), key: env.get(variable) or secrets.get(variable, "")}
    tree["state_dir"], tree["data_dir"], tree["delta_dir"] = state_dir, data_dir, delta_dir
    settings = _build(Settings, tree, "")
    for name, port in (("kafka.port", settings.kafka.port), ("kafka.controller_port", settings.kafka.controller_port),
                       ("elasticsearch.port", settings.elasticsearch.port),
                       ("elasticsearch.transport_port", settings.elasticsearch.transport_port),
                       ("mysql.port", settings.mysql.port), ("dashboard.port", settings.dashboard.port)):
        if not 0 < port < 65536:
            raise ConfigError(f"'{name}' must be a TCP port, got {port}")
    for name, count in (("kafka.partitions", settings.kafka.partitions),
                        ("stream.state_shards", settings.stream.state_shards),
                        ("stream.max_offsets_per_trigger", settings.stream.max_offsets_per_trigger),
                        ("stream.duplicate_days", settings.stream.duplicate_days)):
        if count < 1:
            raise ConfigError(f"'{name}' must be at least 1, got {count}")
    if settings.stream.on_data_loss not in ("stop", "skip"):
        raise ConfigError(f"'stream.on_data_loss' must be stop or skip, got {settings.stream.on_data_loss!r}")
    return settings
