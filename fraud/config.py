"""Typed configuration: pydantic-settings models loaded from ``conf/*.yaml``.

Values come from the YAML file (``base: local.yaml`` names a file it overrides key by key), then from
``FRAUD_*`` environment variables named after the key's path (``FRAUD_KAFKA_PORT=19092`` overrides
``kafka.port``, ``FRAUD_KAFKA_TOPICS_RAW`` ``kafka.topics.raw``; an empty variable is unset, ``null`` is null),
so tests, CI and users can move ports and state without editing files. Passwords (``SecretStr``, never printed)
come only from the environment or ``<state_dir>/secrets.env``, never from the YAML. The models validate
everything at load time (types, ports, counts, the choices of a key, unknown keys), so bad configuration
fails at start-up with a ``ConfigError`` naming the key.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator, Literal, Mapping, Self

import yaml
from dotenv import dotenv_values
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]
# imported from a zip (spark-submit --py-files), the project is the working directory
PROJECT_ROOT = _PACKAGE_PARENT if _PACKAGE_PARENT.is_dir() else Path.cwd()
CONF_DIR = PROJECT_ROOT / "conf"
DEFAULT_CONFIG = CONF_DIR / "local.yaml"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".state"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "fdh"


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the offending key."""


def _tcp_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise PydanticCustomError("tcp_port", "must be a TCP port (1-65535), got {port}", {"port": port})
    return port


Port = Annotated[int, AfterValidator(_tcp_port)]
Count = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Topics(_Section):
    raw: str
    labels: str
    scored: str
    deadletter: str


class KafkaConf(_Section):
    host: str
    port: Port
    controller_port: Port
    heap_mb: Count
    partitions: Count
    topics: Topics
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    ssl_ca_location: str = ""             # PEM file of the CA for SSL / SASL_SSL
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")

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
                           "sasl.password": self.sasl_password.get_secret_value()})
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
            username, password = json.dumps(self.sasl_username), json.dumps(self.sasl_password.get_secret_value())
            options.update({"kafka.sasl.mechanism": self.sasl_mechanism,
                            "kafka.sasl.jaas.config": f"{module} required username={username} password={password};"})
        return options


class ElasticsearchConf(_Section):
    host: str
    port: Port
    transport_port: Port
    heap_mb: Count
    index: str
    scheme: Literal["http", "https"] = "http"
    username: str = ""
    password: SecretStr = SecretStr("")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class MysqlConf(_Section):
    host: str
    port: Port
    database: str
    user: str
    password: SecretStr = SecretStr("")

    @property
    def jdbc_url(self) -> str:
        # jdbc:mysql:// makes Spark pick its MySQL dialect; permitMysqlScheme lets the
        # MariaDB driver (jvm/spark/pom.xml says why that driver) accept it.
        return f"jdbc:mysql://{self.host}:{self.port}/{self.database}?permitMysqlScheme"

    jdbc_driver: ClassVar[str] = "org.mariadb.jdbc.Driver"


class SparkConf(_Section):
    master: str
    driver_memory: str
    shuffle_partitions: Count
    arrow_batch_rows: int         # rows per Arrow batch to pandas UDFs (spark.sql.execution.arrow.maxRecordsPerBatch)


class StreamConf(_Section):
    model: str                    # a model folder, or a folder of them (the newest is served and hot-reloaded)
    checkpoint_dir: str           # relative paths are under state_dir
    trigger_seconds: float = Field(ge=0)  # decision query: 0 = the next micro-batch as soon as the previous is done
    delivery_trigger_seconds: float = Field(ge=0)  # delivery query (MySQL, Elasticsearch, Delta): its interval
    delivery_nice: int = Field(ge=0, le=19)  # the delivery process's CPU niceness; above 0 it yields to the decisions
    max_offsets_per_trigger: Count
    state_shards: Count           # hash partitions of the card and terminal state; fixed for the life of the state
    shuffle_partitions: Count     # the stream's other shuffles (the delivery query's deduplication)
    starting_offsets: Literal["earliest", "latest"]  # for a new checkpoint
    delay_days: Count             # label delay the terminal features assume (they need it positive)
    duplicate_days: Count = 180   # event time a decided transaction id is remembered for: a resend is not decided twice
    spark_ui: bool = False        # the stream driver's Spark UI (port 4040); off: every micro-batch is faster
    on_data_loss: Literal["stop", "skip"] = "stop"  # records deleted by Kafka before the stream read them: skip logs
    source: str | None = None     # a source mapping (fraud.sources): messages in your own fields; null: the contract
    review_threshold: float | None = Field(None, ge=0, le=1)  # null = the model's own thresholds
    block_threshold: float | None = Field(None, ge=0, le=1)


class DashboardConf(_Section):
    host: str                     # 127.0.0.1: only this machine; 0.0.0.0 inside a container
    port: Port
    refresh_seconds: float = Field(gt=0)  # how often the page polls for new data


class Settings(BaseSettings):
    """The whole configuration: ``load_settings()``. ``Settings()`` reads ``os.environ`` as ``load_settings()``
    does, keyword arguments winning over every source."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix="FRAUD_", env_ignore_empty=True,
                                      env_parse_none_str="null")

    state_dir: Path               # relative paths are under the project root; null: .state
    data_dir: Path | None         # null: the shared dataset when there is one
    delta_dir: Path               # null: <state_dir>/delta
    kafka: KafkaConf
    elasticsearch: ElasticsearchConf
    mysql: MysqlConf
    spark: SparkConf
    stream: StreamConf
    dashboard: DashboardConf

    @model_validator(mode="before")
    @classmethod
    def _directories(cls, values: dict[str, Any]) -> dict[str, Any]:
        state_dir = _project_path(values.get("state_dir"), DEFAULT_STATE_DIR)
        data_dir = _project_path(values.get("data_dir"), SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None)
        delta_dir = _project_path(values.get("delta_dir"),
                                  state_dir / "delta" if isinstance(state_dir, Path) else None)
        return {**values, "state_dir": state_dir, "data_dir": data_dir, "delta_dir": delta_dir}

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Self:
        """``load_settings`` for this class (or a subclass). Raises ConfigError naming each invalid key."""
        try:
            sources = _sources(cls, os.environ if env is None else env, path)
            return cls(_build_sources=(sources, {}))  # type: ignore[call-arg]  # mypy sees only the fields
        except ValidationError as error:
            raise ConfigError(_describe(error)) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, *_sources(settings_cls, os.environ, None)

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


def _project_path(value: Any, default: Path | None) -> Any:
    """``value`` as a path, a relative one under the project root; ``default`` for null or empty."""
    if value is None or value == "":
        return default
    if not isinstance(value, str | Path):
        return value  # pydantic refuses it, naming the key
    path = Path(value).expanduser()
    return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


def _keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf key of ``model``: its path and field."""
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _keys(field.annotation, (*path, name))
        else:
            yield (*path, name), field


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr


class _Variables(PydanticBaseSettingsSource):
    """``FRAUD_*`` variables, a nested key's path joined by "_" (``FRAUD_KAFKA_TOPICS_RAW``). The names are made
    from the models' keys, which hold "_" themselves (``shuffle_partitions``), instead of being split on "_" as
    pydantic-settings' own source does with ``env_nested_delimiter``."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str | None],
                 secrets_only: bool = False) -> None:
        super().__init__(settings_cls)
        self.variables, self.secrets_only = variables, secrets_only

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every key at once

    def __call__(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for path, field in _keys(self.settings_cls):
            value = self.variables.get(self.config.get("env_prefix", "") + "_".join(path).upper())
            unset = value is None or (value == "" and self.config.get("env_ignore_empty"))
            if unset or (self.secrets_only and not _is_secret(field)):
                continue
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = None if value == self.config.get("env_parse_none_str") else value
        return tree


class _SecretsFile(_Variables):
    """The passwords in ``<state_dir>/secrets.env`` (``FRAUD_MYSQL_PASSWORD=...``), in the state_dir the sources
    before this one decided."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, {}, secrets_only=True)

    def __call__(self) -> dict[str, Any]:
        state_dir = _project_path(self.current_state.get("state_dir"), DEFAULT_STATE_DIR)
        if isinstance(state_dir, Path):
            self.variables = dotenv_values(state_dir / "secrets.env", interpolate=False)
        return super().__call__()


class _YamlFile(YamlConfigSettingsSource):
    """A ``conf/*.yaml`` file; ``base: other.yaml`` (next to it) names a file it overrides key by key."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}")
        super().__init__(settings_cls, yaml_file=path)
        for keys, field in _keys(settings_cls):
            section: Any = self.yaml_data
            for key in keys[:-1]:
                section = section.get(key) if isinstance(section, dict) else None
            if _is_secret(field) and isinstance(section, dict) and keys[-1] in section:
                variable = self.config.get("env_prefix", "") + "_".join(keys).upper()
                raise ConfigError(f"'{'.'.join(keys)}' is a secret: set {variable} in the environment or the "
                                  f"secrets file, not in {path}")

    def _read_file(self, file_path: Any, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
        try:
            tree = super()._read_file(file_path)
        except yaml.YAMLError as error:
            raise ConfigError(f"{file_path} is not valid YAML: {error}".replace("\n", " ")) from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{file_path} must hold a mapping")
        base = tree.pop("base", None)
        if base is None:
            return tree
        base_path = (Path(file_path).parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"configuration file not found: {base_path} (the base of {file_path})")
        chain = (*seen, Path(file_path).resolve())
        if base_path in chain:
            raise ConfigError(f"{file_path}: 'base: {base}' makes a cycle ({' -> '.join(map(str, chain))})")
        return _merge(self._read_file(base_path, chain), tree)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _sources(settings_cls: type[BaseSettings], env: Mapping[str, str],
             path: str | Path | None) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest priority first: ``FRAUD_*`` variables, the YAML file, the secrets file (passwords only)."""
    config = Path(path or env.get("FRAUD_CONFIG") or DEFAULT_CONFIG)
    return _Variables(settings_cls, env), _YamlFile(settings_cls, config), _SecretsFile(settings_cls)


_PHRASES = {  # what ConfigError says of a key, by pydantic error type (else pydantic's message)
    "int_parsing": "must be an integer", "int_from_float": "must be an integer", "int_type": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}", "literal_error": "must be {expected}",
    "tcp_port": "must be a TCP port (1-65535)", "model_type": "must be a mapping",
}


def _describe(error: ValidationError) -> str:
    """pydantic's errors as one message naming each key; unknown keys grouped by section."""
    messages: list[str] = []
    unknown: dict[str, list[str]] = {}
    for detail in error.errors():
        *section, name = (str(part) for part in detail["loc"])
        key, phrase = ".".join([*section, name]), _PHRASES.get(detail["type"])
        if detail["type"] == "extra_forbidden":
            unknown.setdefault(".".join(section) or "top level", []).append(name)
        elif detail["type"] == "missing":
            messages.append(f"missing configuration key '{key}'")
        elif phrase:  # ctx: {"expected": "'stop' or 'skip'"}, {"ge": 1}, ...
            context = {k: str(v).replace("'", "") for k, v in detail.get("ctx", {}).items()}
            messages.append(f"'{key}' {phrase.format(**context)}, got {detail['input']!r}")
        else:
            messages.append(f"'{key}': {detail['msg']}")
    messages += [f"unknown configuration key(s) in '{where}': {sorted(keys)}" for where, keys in unknown.items()]
    return "; ".join(messages)


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate settings from ``path`` (default ``$FRAUD_CONFIG`` or conf/local.yaml) and ``env``
    (default ``os.environ``). Raises ConfigError naming the key for any invalid configuration."""
    return Settings.load(path, env)
