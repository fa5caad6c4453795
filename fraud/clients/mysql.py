"""The MySQL client: a connection as the application user (``mysql.*`` settings; MariaDB or MySQL 8)."""
from __future__ import annotations

import mysql.connector

from fraud.config import Settings


def connect(settings: Settings, database: str | None = None, **options):
    """A mysql-connector connection as the application user (``options``: e.g. ``connection_timeout``)."""
    conf = settings.mysql
    return mysql.connector.connect(host=conf.host, port=conf.port, user=conf.user,
                                   password=conf.password.get_secret_value(),
                                   database=database or conf.database, autocommit=True, **options)
