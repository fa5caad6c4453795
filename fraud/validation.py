"""Parse and validate Kafka transaction and label records; a record that does not fit gets a reason.

``validate_records`` is a transform over the Kafka source's columns: every
record comes out once, with the parsed fields and ``reason`` (null when the
record is valid), so the caller splits valid rows from dead letters without
losing any. The first failing check names the reason.

A transaction (``transactions.raw``) carries transaction_id, tx_datetime,
customer_id, terminal_id and tx_amount; a label (records of ``labels_topic``)
carries transaction_id, tx_datetime, customer_id, terminal_id and tx_fraud (0 or 1).
Extra fields are allowed.

An id (transaction_id, customer_id: the card, terminal_id) is a JSON string or a JSON
integer of any size, and comes out as text (``fraud.schemas``): a string as sent,
an integer as its exact decimal text (12345678901234567890123 stays
"12345678901234567890123"; -0 is "0"), so 42 and "42" are the same id. Refused, each
with its reason: null (missing), true / false, an array, an object, a number that is
not an integer (1.5, 1e3, 1.0), an empty or whitespace-only string, one with
whitespace at either end (MySQL's collation ignores trailing spaces: "a" and "a "
would be one key there), one longer than ``ID_MAX_CHARS`` characters, one holding a
control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F). Spark's JSON
parser gives a string field the JSON text of any other token (``true``, ``[1]``,
``1000.0`` for 1e3), so the token's kind is read apart: numbers by parsing the ids
as doubles too (with the amount and label), booleans, arrays and objects by parsing
them as such, only for the rare records where an id reads like one.

The payload must be valid UTF-8 (strictly: it must decode and encode back to the
same bytes; a U+FFFD character that was sent is valid text). ``tx_datetime`` is
ISO-8601 (RFC 3339): date, ``T`` or a space, hours, minutes, seconds, up to 9
fraction digits (kept to the microsecond, as Spark does), and a zone designator
``Z`` or a numeric offset (``+05:30``, ``-0800``), converted to UTC. One rule for a
time without a designator: it is UTC (what the handbook's data and ``fraud
produce`` send). A zone name (``America/New_York``: ambiguous or missing local
times at DST changes) or any other shape is refused; the host's time zone is never
used. Every accepted instant lies between 1900-01-01 and 9999-12-31 (UTC), what
every sink stores as sent (Parquet/Delta refuse older instants without a calendar
rebase; MySQL ``DATETIME`` ends in 9999), and so does the record's Kafka timestamp.
"""
from __future__ import annotations

import functools
import operator

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from fraud.schemas import (
    ID_COLUMNS,
    ID_FIELDS,
    LABEL_COLUMN,
    LABEL_FIELDS,
    OWN_PREFIX,
    TRANSACTION_FIELDS,
    id_text_problem,
)
from fraud.sources import SourceError, SourceMapping, bare_column, mapped_columns, message_schema, unread_numbers

MAX_PAYLOAD_BYTES = 10_000
MAX_CLOCK_SKEW = "1 day"  # an event time further ahead of its Kafka timestamp than this is refused
# ISO-8601 / RFC 3339 date-time, zone designator optional (none = UTC)
ISO_8601 = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)?$"
SINK_TIMES = ("1900-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")  # UTC: what Delta, MySQL and Elasticsearch store
FIELDS = list(dict.fromkeys([*TRANSACTION_FIELDS, *LABEL_FIELDS]))  # fraud.schemas: the message contract
TRANSACTION_ONLY, LABEL_ONLY = "tx_amount", "tx_fraud"
NUMERIC_FIELDS: dict[str, DataType] = {TRANSACTION_ONLY: DoubleType(), LABEL_ONLY: LongType()}
_CORRUPT = "_corrupt_record"
# JSON as RFC 8259 writes it: Spark's parser would otherwise take 'single-quoted' names and strings
_STRICT_JSON = {"allowSingleQuotes": "false"}
# every field as text (what was sent; any JSON token but a string as its JSON text), the numeric fields as the
# contract's types, and the ids as doubles: not null for a number token (or the strings NaN, Infinity, INF, signed)
_AS_TEXT = StructType([StructField(name, StringType()) for name in FIELDS] + [StructField(_CORRUPT, StringType())])
_AS_TYPED = StructType([StructField(name, kind) for name, kind in NUMERIC_FIELDS.items()]
                       + [StructField(name, DoubleType()) for name in ID_FIELDS])
_INTEGER = r"^-?[0-9]+$"  # the text of an integer token, and a string of digits: the same id either way
_DOUBLE_WORDS = r"^[+-]?(NaN|INF|Infinity)$"  # strings Spark's parser takes as doubles (its number tokens get quotes)
# what else an id's token may be, each parsed apart where an id reads like one: true / false, [..., {...
_OTHER_KINDS: dict[str, DataType] = {"true or false": BooleanType(), "an array": ArrayType(StringType()),
                                     "an object": MapType(StringType(), StringType())}


def _first_failure(checks: list[tuple[Column, Column | str]]) -> Column:
    reason = F.lit(None).cast("string")
    for failed, message in reversed(checks):
        reason = F.when(failed, message if isinstance(message, Column) else F.lit(message)).otherwise(reason)
    return reason


def validate_records(records: DataFrame, labels_topic: str | None = None,
                     mapping: SourceMapping | None = None) -> DataFrame:
    """Kafka records (value, topic, partition, offset, timestamp) -> one row each: the parsed fields (FIELDS;
    the ids as text, null for a refused record; tx_datetime a UTC timestamp, null outside SINK_TIMES),
    ``payload`` (the value as text), the Kafka position (kafka_topic, kafka_partition, kafka_offset,
    kafka_timestamp), ``reason`` (null when valid), ``payload_bytes`` (the value's size) and ``payload_sha256`` (hex
    SHA-256 of the value, for a refused record only).

    Records of ``labels_topic`` are checked as labels, all others as transactions. With a source ``mapping``
    (``fraud.sources``) the messages are the user's own JSON: the contract's fields are the mapping's expressions
    over the message's fields (``_mapped_fields``), and the own features follow, as ``OWN_<name>`` columns
    (double, or text for the categorical ones). Raises SourceError (before any job) for a mapping that does not fit.
    """
    payload = F.decode("value", "UTF-8")  # invalid bytes become U+FFFD (a plain cast would keep them)
    received = records.select(
        payload.alias("payload"), F.col("value").alias("_value"), F.length("value").alias("_bytes"),
        F.col("topic").alias("kafka_topic"), F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"), F.col("timestamp").alias("kafka_timestamp"))
    is_label = F.col("kafka_topic") == labels_topic if labels_topic else F.lit(False)
    parsed, fields, field_checks = (_contract_fields(received, is_label) if mapping is None
                                    else _mapped_fields(received, is_label, mapping))
    event_time = fields["tx_datetime"]
    checks: list[tuple[Column, Column | str]] = [
        (F.coalesce("_bytes", F.lit(0)) == 0, "empty payload"),
        (F.col("_bytes") > MAX_PAYLOAD_BYTES,
         F.format_string(f"payload of %d bytes exceeds {MAX_PAYLOAD_BYTES}", F.col("_bytes"))),
        (F.encode("payload", "UTF-8") != F.col("_value"), "payload is not valid UTF-8"),  # U+FFFD came back
        (F.col("_text").isNull() | ~F.ltrim("payload").startswith("{"), "payload is not a JSON object"),
        (F.col(f"_text.{_CORRUPT}").isNotNull(), "malformed JSON"),
        (~F.rtrim("payload").endswith("}"), "malformed JSON: content after the object"),
        *field_checks,
        (is_label & ~fields["tx_fraud"].isin(0, 1), "tx_fraud is not 0 or 1"),
        (F.isnan(fields["tx_amount"]) | fields["tx_amount"].isin(float("inf"), float("-inf")),
         "tx_amount is not finite"),
        (fields["tx_amount"] < 0, "tx_amount is negative"),
        (in_sink_range(event_time).isNull(),
         f"tx_datetime is outside {SINK_TIMES[0][:10]} to {SINK_TIMES[1][:10]} (UTC), what the sinks store"),
        (in_sink_range(F.col("kafka_timestamp")).isNull(),
         f"the Kafka timestamp is outside {SINK_TIMES[0][:10]} to {SINK_TIMES[1][:10]} (UTC)"),
        (event_time > F.col("kafka_timestamp") + F.expr(f"INTERVAL {MAX_CLOCK_SKEW}"),
         f"tx_datetime is more than {MAX_CLOCK_SKEW} ahead of its Kafka timestamp"),
    ]
    # The rows come out of a generator (inline of a one-element array): a filter on ``reason`` stays above it.
    # Without it Spark pushes such a filter below the parsing and inlines from_json into the condition, once per
    # field it reads: 27 parses per record, 5x the time (measured: 4.0 s instead of 0.8 s for 50,000 records).
    reason = F.col("_reason")
    own = [name for name in fields if name.startswith(OWN_PREFIX)]
    return parsed.withColumn("_reason", _first_failure(checks)).select(F.inline(F.array(F.struct(
        *(in_sink_range(event_time).alias(name) if name == "tx_datetime" else
          F.when(reason.isNull(), fields[name]).alias(name) for name in TRANSACTION_FIELDS if name != "tx_amount"),
        fields["tx_amount"].alias("tx_amount"),
        fields["tx_fraud"].cast("long").alias("tx_fraud"),
        "payload", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", reason.alias("reason"),
        F.coalesce("_bytes", F.lit(0)).alias("payload_bytes"),
        F.when(reason.isNotNull(), F.sha2("_value", 256)).alias("payload_sha256"),
        *(fields[name].alias(name) for name in own)))))


_Fields = tuple[DataFrame, dict[str, Column], list[tuple[Column, Column | str]]]


def _contract_fields(received: DataFrame, is_label: Column) -> _Fields:
    """The message contract's fields of ``received`` (``validate_records``' columns): (the records with the parsed
    value as ``_text`` and ``_typed``, each field's column by name, the field checks in order)."""
    text = F.from_json("payload", _AS_TEXT, {**_STRICT_JSON, "columnNameOfCorruptRecord": _CORRUPT})
    parsed = _with_kinds(received.select("*", text.alias("_text"),
                                         F.from_json("payload", _AS_TYPED, _STRICT_JSON).alias("_typed")), ID_FIELDS)
    checks: list[tuple[Column, Column | str]] = []
    for name in FIELDS:
        expected = ~is_label if name == TRANSACTION_ONLY else is_label if name == LABEL_ONLY else F.lit(True)
        checks.append((expected & F.col(f"_text.{name}").isNull(), f"missing {name}"))
        if name in NUMERIC_FIELDS:
            kind = "an integer" if isinstance(NUMERIC_FIELDS[name], LongType) else "a number"
            checks.append((expected & F.col(f"_typed.{name}").isNull(), f"{name} is not {kind}"))
        checks += _id_checks(name) if name in ID_FIELDS else []
    event_time = F.to_timestamp("_text.tx_datetime")
    checks.append((~F.col("_text.tx_datetime").rlike(ISO_8601) | event_time.isNull(),
                   "tx_datetime is not an ISO-8601 date-time with seconds (and Z or a numeric offset, or none for "
                   "UTC)"))
    fields = {**{name: F.col(f"_text.{name}") for name in ID_FIELDS}, "tx_datetime": event_time,
              **{name: F.col(f"_typed.{name}") for name in NUMERIC_FIELDS}}
    return parsed, fields, checks


_CARRY = "__received"


def _mapped_fields(received: DataFrame, is_label: Column, mapping: SourceMapping) -> _Fields:
    """``_contract_fields`` for the user's own messages: the message's fields (``fraud.sources.message_schema``)
    mapped by ``mapping``, then the own features. An id that is a message field by itself gets the contract's id
    checks (a number that is not an integer, true / false, an array, an object: refused); every id the text rules.
    A field the mapping gives no value for names its expression. Raises SourceError."""
    schema = message_schema(received.sparkSession, mapping)
    as_text = StructType([StructField(f.name, StringType()) for f in schema.fields] + [StructField(_CORRUPT,
                                                                                                  StringType())])
    bare_ids = {name: bare_column(getattr(mapping, name)) for name in ID_FIELDS if getattr(mapping, name)}
    sent_ids = sorted({column for column in bare_ids.values() if column})
    parsed = _with_kinds(received.select(
        "*", F.from_json("payload", as_text, {**_STRICT_JSON, "columnNameOfCorruptRecord": _CORRUPT}).alias("_text"),
        F.from_json("payload", StructType([StructField(c, DoubleType()) for c in sent_ids]), _STRICT_JSON)
        .alias("_typed")), sent_ids)
    message = parsed.select(*(F.col("_text").getField(f.name).cast(f.dataType).alias(f.name) for f in schema.fields),
                            F.struct(*parsed.columns).alias(_CARRY))
    try:
        columns = mapped_columns(message, mapping, from_text=True)
    except SourceError as error:
        if "DATATYPE_MISMATCH" not in str(error):
            raise
        raise SourceError(f"{error} (a message's fields are text: cast(field AS double) where a function needs a "
                          "number)") from None
    unread = unread_numbers(message, mapping)
    mapped = message.select(f"{_CARRY}.*", *(column.alias(f"_mapped_{name}") for name, column in columns.items()),
                            *(text.alias(f"_unread_{name}") for name, (_, _, text) in unread.items()))
    value = lambda name: F.col(f"_mapped_{name}")  # noqa: E731
    checks: list[tuple[Column, Column | str]] = []
    for name, column in zip(ID_FIELDS, ID_COLUMNS):
        given = getattr(mapping, name)
        checks.append((value(column).isNull(), f"missing {name}: {given!r} gave no value"))
        source = bare_ids.get(name)
        checks += (_id_checks(name, source) if source else
                   [(id_text_problem(value(column), name).isNotNull(), id_text_problem(value(column), name))])
    for column, (field, expression, _) in unread.items():  # text that is not a number, where a number is read
        quoted = F.regexp_extract(F.to_json(F.array(F.substring(f"_unread_{column}", 1, 40))), r"^\[(.*)\]$", 1)
        checks.append(((is_label if column == LABEL_COLUMN else ~is_label) & F.col(f"_unread_{column}").isNotNull(),
                       F.concat(F.lit(f"{field}: {expression!r} gave the text "), quoted, F.lit(", not a number"))))
    checks += [
        (value("TX_DATETIME").isNull(), f"missing tx_datetime: {mapping.tx_datetime!r} gave no value (a format that "
                                        "does not fit the text gives none)"),
        (~is_label & value("TX_AMOUNT").isNull(), f"missing tx_amount: {mapping.tx_amount!r} gave no number"),
        (is_label & F.lit(mapping.label is None), "the source mapping has no label: a label cannot be read"),
        (is_label & value(LABEL_COLUMN).isNull(), f"missing tx_fraud: {mapping.label!r} gave no number"),
    ]
    fields = {**{name: value(column) for name, column in zip(ID_FIELDS, ID_COLUMNS)},
              "tx_datetime": value("TX_DATETIME"), "tx_amount": value("TX_AMOUNT"), "tx_fraud": value(LABEL_COLUMN),
              **{name: value(name) for name in mapping.own_columns}}
    return mapped, fields, checks


def _with_kinds(parsed: DataFrame, ids: list[str] | tuple[str, ...]) -> DataFrame:
    """``parsed`` with a column per other kind of JSON token (``_OTHER_KINDS``) holding the ``ids`` fields parsed as
    that kind, only for the rare records where an id's text (``_text``) reads like one."""
    if not ids:
        return parsed.withColumns({_kind_column(kind): F.lit(None) for kind in _OTHER_KINDS})
    text = lambda name: F.col("_text").getField(name)  # noqa: E731
    reads_like_other = functools.reduce(operator.or_, (text(name).isin("true", "false") | text(name).rlike(r"^[\[{]")
                                                       for name in ids))
    return parsed.withColumns({  # lazily: a when() branch is evaluated only for the rows it is taken on
        _kind_column(kind): F.when(reads_like_other, F.from_json(
            "payload", StructType([StructField(name, schema) for name in ids]), _STRICT_JSON))
        for kind, schema in _OTHER_KINDS.items()})


def _kind_column(kind: str) -> str:
    return "_" + kind.replace(" ", "_")


def _id_checks(name: str, field: str | None = None) -> list[tuple[Column, Column | str]]:
    """The checks of the id ``name`` sent as the message field ``field`` (default: ``name``), after "missing",
    each with its reason; see the module doc."""
    field = field or name
    text, number = F.col("_text").getField(field), F.col("_typed").getField(field)
    shown = name if field == name else f"{name} ({field})"
    rule = "an id is a JSON string or integer"
    problem = id_text_problem(text, name)
    return [
        (number.isNotNull() & ~text.rlike(_INTEGER) & ~text.rlike(_DOUBLE_WORDS),
         f"{shown} is a number that is not an integer; {rule}"),
        *((F.col(_kind_column(kind)).getField(field).isNotNull(), f"{shown} is {kind}; {rule}")
          for kind in _OTHER_KINDS),
        (problem.isNotNull(), problem),
    ]


def in_sink_range(timestamp: Column) -> Column:
    """``timestamp`` when every sink can store it (SINK_TIMES), else null: a dead letter's Kafka timestamp."""
    return F.when(timestamp.between(*(F.lit(t).cast("timestamp") for t in SINK_TIMES)), timestamp)

