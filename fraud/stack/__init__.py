"""Local services without Docker: Kafka (KRaft), Elasticsearch and MariaDB.

Each service is a plain background process with a pid file, a log file and a
health check, all under the configured state directory, so ``up`` and ``down``
are idempotent and a second ``up`` finds the data the first one left.
"""
