-- Tables of the `fraud` database. Run inside the configured database, by
-- `fraud stack up` (local MariaDB 10.11) and by the MySQL 8.0 container's init;
-- every statement is idempotent and valid on both. `fraud init` also changes the type
-- of a column whose type differs here (ALTER TABLE ... MODIFY COLUMN: the ids, BIGINT
-- before they were text).

-- Ids are text (fraud/schemas.py: ID_MAX_CHARS characters at most), compared byte for
-- byte (utf8mb4_bin: "A" and "a" are two ids; validation refuses the spaces at either
-- end that this PAD SPACE collation would ignore).
CREATE TABLE IF NOT EXISTS scored_transactions (
    transaction_id   VARCHAR(128)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    tx_datetime      DATETIME(6)   NOT NULL,
    customer_id      VARCHAR(128)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    terminal_id      VARCHAR(128)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    tx_amount        DOUBLE        NOT NULL,
    fraud_score      DOUBLE        NULL,
    decision         VARCHAR(16)   NULL,
    reason_codes     VARCHAR(1024) NULL,
    model_version    VARCHAR(64)   NULL,
    kafka_timestamp  DATETIME(3)   NULL,
    scored_at        DATETIME(3)   NULL,
    decided_at       DATETIME(3)   NULL,
    PRIMARY KEY (transaction_id),
    KEY idx_scored_tx_datetime (tx_datetime),
    KEY idx_scored_customer (customer_id, tx_datetime),
    KEY idx_scored_decision (decision, tx_datetime)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Records the stream could not parse or validate, keyed by their Kafka position
-- so a replayed micro-batch cannot store one twice.
CREATE TABLE IF NOT EXISTS dead_letters (
    source_topic     VARCHAR(249)  NOT NULL,
    source_partition INT           NOT NULL,
    source_offset    BIGINT        NOT NULL,
    reason           VARCHAR(512)  NOT NULL,
    payload          MEDIUMTEXT    NULL,
    payload_bytes    INT           NULL,
    payload_sha256   CHAR(64)      NULL,
    kafka_timestamp  DATETIME(3)   NULL,
    received_at      DATETIME(3)   NOT NULL,
    PRIMARY KEY (source_topic, source_partition, source_offset)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per micro-batch of each streaming query (pipeline health), from Spark's
-- query progress; a batch redone after a restart overwrites its row.
CREATE TABLE IF NOT EXISTS stream_progress (
    query_name       VARCHAR(64)   NOT NULL,
    batch_id         BIGINT        NOT NULL,
    reported_at      DATETIME(3)   NOT NULL,
    input_rows       BIGINT        NOT NULL,
    input_rows_per_second     DOUBLE NULL,
    processed_rows_per_second DOUBLE NULL,
    duration_ms      BIGINT        NOT NULL,
    offsets_behind   BIGINT        NULL,
    state_keys       BIGINT        NULL,
    state_records    BIGINT        NULL,
    state_bytes      BIGINT        NULL,
    PRIMARY KEY (query_name, batch_id),
    KEY idx_progress_reported_at (reported_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
