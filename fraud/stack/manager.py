"""``fraud stack up | down | status``: start, stop and report the local services."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Callable

from pydantic import SecretStr

from fraud.bootstrap import bootstrap
from fraud.config import Settings
from fraud.process import resident_memory_mb
from fraud.stack.elasticsearch import elasticsearch_process, start_elasticsearch
from fraud.stack.kafka import kafka_process, start_kafka
from fraud.stack.mariadb import admin_sql, mariadb_process, start_mariadb
from fraud.stack.process import ManagedProcess

# name -> (process factory, start function, seconds to become healthy)
SERVICES: dict[str, tuple[Callable[[Settings], ManagedProcess], Callable[[Settings, ManagedProcess], None], float]] = {
    "kafka": (kafka_process, start_kafka, 90),
    "elasticsearch": (elasticsearch_process, start_elasticsearch, 180),
    "mariadb": (mariadb_process, start_mariadb, 60),
}


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    pid: int | None
    port: int
    healthy: bool
    rss_mb: float
    log: str


def processes(settings: Settings) -> dict[str, ManagedProcess]:
    return {name: factory(settings) for name, (factory, _, _) in SERVICES.items()}


def with_mysql_password(settings: Settings) -> Settings:
    """Settings carrying a MySQL password: from the environment, the secrets file, or a new random one."""
    if settings.mysql.password.get_secret_value():
        return settings
    password = secrets.token_urlsafe(18)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.secrets_file.touch(mode=0o600)
    with settings.secrets_file.open("a") as out:
        out.write(f"FRAUD_MYSQL_PASSWORD={password}\n")
    return settings.model_copy(update={"mysql": settings.mysql.model_copy(update={"password": SecretStr(password)})})


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def create_database_and_user(settings: Settings) -> None:
    """As the local admin: the database and the application account (password kept in sync)."""
    conf = settings.mysql
    db = f"`{conf.database}`"
    password = _sql_string(conf.password.get_secret_value())
    statements = [f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4"]
    for host in ("127.0.0.1", "localhost"):
        account = f"{_sql_string(conf.user)}@{_sql_string(host)}"
        statements += [f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password}",
                       f"ALTER USER {account} IDENTIFIED BY {password}",
                       f"GRANT ALL PRIVILEGES ON {db}.* TO {account}"]
    admin_sql(settings, ";\n".join(statements) + ";\n")


def stack_up(settings: Settings, echo: Callable[[str], None] = print) -> Settings:
    """Start whatever is not running, wait until all are healthy, bootstrap; idempotent.

    If any service fails, the ones this call started are stopped again, so a
    failed ``up`` leaves nothing half-running. Returns the settings with the
    MySQL password filled in.
    """
    settings = with_mysql_password(settings)
    started: list[ManagedProcess] = []
    began = time.monotonic()
    try:
        waiting = []
        for name, proc in processes(settings).items():
            _, start, timeout = SERVICES[name]
            if proc.pid() is not None:
                echo(f"{name}: already running (pid {proc.pid()})")
            else:
                echo(f"{name}: starting on {proc.host}:{proc.port} (log {proc.log_file})")
                start(settings, proc)
                started.append(proc)
            waiting.append((proc, timeout))
        for proc, timeout in waiting:
            proc.wait_healthy(timeout)
            echo(f"{proc.name}: healthy")
        create_database_and_user(settings)
        did = bootstrap(settings)
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    echo(f"stack up in {time.monotonic() - began:.1f}s; bootstrap: {did}")
    return settings


def stack_down(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Stop every service of this stack; data stays in the state directory."""
    for name, proc in reversed(processes(settings).items()):
        echo(f"{name}: {'stopped' if proc.stop() else 'was not running'}")


def stack_status(settings: Settings) -> list[ServiceStatus]:
    out = []
    for name, proc in processes(settings).items():
        pid = proc.pid()
        out.append(ServiceStatus(service=name, pid=pid, port=proc.port, healthy=proc.is_healthy(),
                                 rss_mb=resident_memory_mb(pid) if pid else 0.0, log=str(proc.log_file)))
    return out


def format_status(rows: list[ServiceStatus]) -> str:
    header = ("service", "pid", "port", "healthy", "rss_mb", "log")
    table = [header] + [(r.service, str(r.pid or "-"), str(r.port), "yes" if r.healthy else "no",
                         f"{r.rss_mb:.0f}", r.log) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)


