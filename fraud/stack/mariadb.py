"""MariaDB (the MySQL protocol) from Debian's mariadb-server, with a private datadir.

The server runs as the invoking OS user, which administers it through the unix
socket (``unix_socket`` authentication, no password); applications use the
``fraud`` account over TCP with the password from the secrets file or
``FRAUD_MYSQL_PASSWORD``.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from fraud.config import Settings
from fraud.stack.process import ManagedProcess, ServiceError

INSTALL_HINT = "install it with `apt-get install mariadb-server mariadb-client` (`.ci/run` does this as root)"


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        raise ServiceError(f"mariadb: `{name}` not found; {INSTALL_HINT}")
    return found


def mariadb_process(settings: Settings) -> ManagedProcess:
    conf = settings.mysql
    return ManagedProcess(
        name="mariadb", home=settings.state_dir / "mariadb", host=conf.host, port=conf.port,
        healthy=lambda: _socket_path(settings).exists() and admin_sql(settings, "SELECT 1").strip() == "1",
        hint=f"check that mysql.port {conf.port} is free; {INSTALL_HINT}")


def _socket_path(settings: Settings) -> Path:
    return settings.state_dir / "mariadb" / "mysqld.sock"


def start_mariadb(settings: Settings, process: ManagedProcess) -> None:
    """Start the server (its datadir initialised on first start). Raises ServiceError when MariaDB is not installed,
    the initialisation fails or the port is taken."""
    datadir = process.home / "data"
    user_args = ["--user=root"] if os.geteuid() == 0 else []
    if not (datadir / "mysql").is_dir():
        process.home.mkdir(parents=True, exist_ok=True)
        init = subprocess.run(
            [_binary("mariadb-install-db"), f"--datadir={datadir}", *user_args, "--skip-test-db",
             "--auth-root-authentication-method=socket", f"--auth-root-socket-user={getpass.getuser()}"],
            capture_output=True, text=True)
        if init.returncode != 0:
            shutil.rmtree(datadir, ignore_errors=True)
            raise ServiceError(f"mariadb-install-db failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    process.start([
        _binary("mariadbd"), "--no-defaults", f"--datadir={datadir}", *user_args,
        f"--bind-address={settings.mysql.host}", f"--port={settings.mysql.port}",
        f"--socket={_socket_path(settings)}", f"--pid-file={process.home / 'mysqld.pid'}",
        "--innodb-buffer-pool-size=256M", "--max-connections=200", "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci", "--skip-name-resolve"])


def admin_sql(settings: Settings, sql: str) -> str:
    """Run ``sql`` as the OS user's admin account through the socket; returns the client's output. Raises
    ServiceError with the client's message when it fails."""
    result = subprocess.run(
        [_binary("mariadb"), f"--socket={_socket_path(settings)}", "-u", getpass.getuser(),
         "--batch", "--skip-column-names"],
        input=sql, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ServiceError(f"mariadb admin SQL failed: {result.stderr.strip()}")
    return result.stdout
