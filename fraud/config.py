"""Typed configuration: one frozen dataclass tree loaded from ``conf/*.yaml``.

Values come from the YAML file, then from ``FRAUD_*`` environment variables
(``FRAUD_KAFKA_PORT=19092`` overrides ``kafka.port``), so tests, CI and users can
move ports and state without editing files. Everything is validated at load time
so bad configuration fails at start-up with a message naming the key.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, get_type_hints

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ElasticsearchConf:
    host: str
    port: int
    transport_port: int
    heap_mb: int
    index: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


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


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    data_dir: Path | None
    delta_dir: Path
    kafka: KafkaConf
    elasticsearch: ElasticsearchConf
    mysql: MysqlConf
    spark: SparkConf

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"

    @property
    def scored_table(self) -> str:
        return str(self.delta_dir / "scored_transactions")


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
        elif kind is int:
            try:
                kwargs[field.name] = int(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"'{key}' must be an integer, got {raw!r}") from None
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


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate settings from ``path`` (default ``$FRAUD_CONFIG`` or conf/local.yaml)."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("FRAUD_CONFIG") or DEFAULT_CONFIG)
    if not config_path.exists():
        raise ConfigError(f"configuration file not found: {config_path}")
    tree = yaml.safe_load(config_path.read_text()) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{config_path} must hold a mapping")
    tree = _apply_env(tree, env)

    state_dir = _resolve(tree.pop("state_dir", None)) or PROJECT_ROOT / ".state"
    data_dir = _resolve(tree.pop("data_dir", None))
    delta_dir = _resolve(tree.pop("delta_dir", None)) or state_dir / "delta"
    if data_dir is None and SHARED_DATA_DIR.is_dir():
        data_dir = SHARED_DATA_DIR
    secrets = _read_secrets_file(state_dir / "secrets.env")
    mysql = dict(tree.get("mysql") or {})
    mysql["password"] = env.get("FRAUD_MYSQL_PASSWORD") or secrets.get("FRAUD_MYSQL_PASSWORD", "")
    tree["mysql"] = mysql
    tree["state_dir"], tree["data_dir"], tree["delta_dir"] = state_dir, data_dir, delta_dir
    settings = _build(Settings, tree, "")
    for name, port in (("kafka.port", settings.kafka.port), ("kafka.controller_port", settings.kafka.controller_port),
                       ("elasticsearch.port", settings.elasticsearch.port),
                       ("elasticsearch.transport_port", settings.elasticsearch.transport_port),
                       ("mysql.port", settings.mysql.port)):
        if not 0 < port < 65536:
            raise ConfigError(f"'{name}' must be a TCP port, got {port}")
    if settings.kafka.partitions < 1:
        raise ConfigError("'kafka.partitions' must be at least 1")
    return settings
