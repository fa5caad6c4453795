"""Your own data: a source mapping (``--source FILE.yaml``) turns any transaction file into the handbook columns.

A mapping gives each contract field as a Spark SQL expression over the source's own columns (a bare column name is
the simplest expression)::

    transaction_id: trans_num               # omitted: the row number in the files (1-based; files only)
    tx_datetime: "to_timestamp(trans_date_trans_time, 'yyyy-MM-dd HH:mm:ss')"
    customer_id: cc_num                     # the card
    terminal_id: merchant                   # omitted: one terminal for every row (SINGLE_TERMINAL, a single shop)
    tx_amount: amt
    label: is_fraud                         # 1 / 0; training and evaluation only (omitted: unknown, null)
    features:                               # your own numeric features, fed to the model as doubles
      city_pop: city_pop
    categorical:                            # your own categorical features, fed to the model as categories (text)
      category: category

``load_source`` reads and checks the YAML (unknown keys, missing fields, feature names); ``apply`` checks every
expression against a DataFrame's columns and types, before any Spark job runs, then gives the handbook columns
(``fraud.schemas``: TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD) followed by the own
features, each named ``OWN_`` + its name (``OWN_city_pop``, ``OWN_category``; no built-in feature starts with
``OWN_``). ``read_source`` reads files (CSV, Parquet; Delta with a mapped transaction_id) and applies a mapping;
``read_history`` is what the batch commands call: ``fraud.io.read_transactions`` without a mapping.

Every error is a ``SourceError`` (a ``fraud.config.ConfigError``: exit code 2 from the CLI) naming the field.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegralType,
    NumericType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from fraud.config import ConfigError, Settings
from fraud.io import InputError, input_format, raise_input_error, read_transactions
from fraud.schemas import ID_COLUMNS, ID_MAX_CHARS, LABEL_COLUMN, OWN_PREFIX, id_text_problem

SINGLE_TERMINAL = "0"  # TERMINAL_ID of every row when terminal_id is not mapped
MESSAGE_COLUMN = "MESSAGE"  # a row's own columns as JSON (``apply``)
IDS = ("transaction_id", "customer_id", "terminal_id")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class SourceError(ConfigError):
    """A source mapping that cannot work with its source; the message names the field."""


class SourceMapping(BaseModel):
    """A source mapping: each contract field a Spark SQL expression over the source's columns (text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transaction_id: str | None = None
    tx_datetime: str
    customer_id: str
    terminal_id: str | None = None
    tx_amount: str
    label: str | None = None
    features: dict[str, str] = Field(default_factory=dict)
    categorical: dict[str, str] = Field(default_factory=dict)

    @field_validator("features", "categorical")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _NAME.fullmatch(str(name))]
        if bad:
            raise ValueError(f"feature names must be a letter then letters, digits or _, got {bad}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> SourceMapping:
        twice = sorted({n.upper() for n in self.features} & {n.upper() for n in self.categorical})
        if twice:
            raise ValueError(f"{twice} both in features and categorical")
        return self

    @property
    def own_features(self) -> list[str]:
        """The columns of the own numeric features (doubles), in mapping order."""
        return [OWN_PREFIX + name for name in self.features]

    @property
    def own_categorical(self) -> list[str]:
        """The columns of the own categorical features (text), in mapping order."""
        return [OWN_PREFIX + name for name in self.categorical]

    @property
    def own_columns(self) -> list[str]:
        """The columns of every own feature: the numeric ones, then the categorical ones."""
        return [*self.own_features, *self.own_categorical]

    def own_features_type(self) -> StructType | None:
        """The type of the OWN_FEATURES_COLUMN struct (``fraud.schemas``) of this mapping's own features (numbers
        as doubles, categories as text), None when it has none."""
        fields = [*(StructField(name, DoubleType()) for name in self.features),
                  *(StructField(name, StringType()) for name in self.categorical)]
        return StructType(fields) if fields else None


def archive_source(history: DataFrame) -> SourceMapping | None:
    """The mapping that reads ``history`` (``fraud.io.read_archive``: the handbook columns, then the own features of
    a stream that read with a source mapping as ``OWN_*`` columns) with those own features: a double column is a
    number, a text one a category. None when it has none."""
    own = {f.name[len(OWN_PREFIX):]: f.dataType for f in history.schema.fields if f.name.startswith(OWN_PREFIX)}
    if not own:
        return None
    return SourceMapping(transaction_id="TRANSACTION_ID", tx_datetime="TX_DATETIME", customer_id="CUSTOMER_ID",
                         terminal_id="TERMINAL_ID", tx_amount="TX_AMOUNT", label=LABEL_COLUMN,
                         features={n: OWN_PREFIX + n for n, kind in own.items() if not isinstance(kind, StringType)},
                         categorical={n: OWN_PREFIX + n for n, kind in own.items() if isinstance(kind, StringType)})


def stream_source(settings: Settings) -> SourceMapping | None:
    """The source mapping the stream reads its messages with (``stream.source``), None for the message contract.
    Raises SourceError as ``load_source``."""
    return None if settings.stream.source is None else load_source(settings.stream.source)


def load_source(path: str | Path) -> SourceMapping:
    """The mapping in the YAML file ``path``. Raises SourceError (missing file, bad YAML, unknown or missing keys,
    bad feature names), naming the key."""
    file = Path(path)
    if not file.is_file():
        raise SourceError(f"source mapping not found: {file}")
    try:
        tree = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise SourceError(f"{file} is not valid YAML: {error}".replace("\n", " ")) from None
    try:
        return SourceMapping.model_validate(tree)
    except ValidationError as error:
        raise SourceError(f"source mapping {file}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    messages = []
    for detail in error.errors():
        key = ".".join(str(part) for part in detail["loc"]) or "top level"
        if detail["type"] == "extra_forbidden":
            messages.append(f"unknown key '{key}' (the keys: {', '.join(SourceMapping.model_fields)})")
        elif detail["type"] == "missing":
            messages.append(f"'{key}' is required")
        elif detail["type"] == "model_type":
            messages.append("must hold a mapping of the fields to expressions")
        else:
            messages.append(f"'{key}': {detail['msg']}")
    return "; ".join(messages)


# ---------------------------------------------------------------- applying a mapping to a DataFrame

def _typed(df: DataFrame, field: str, expression: str) -> tuple[Column, DataType]:
    """``expression`` as a column of ``df`` and its type. Raises SourceError naming ``field`` when it does not parse
    or names a column or function ``df`` lacks."""
    try:
        column = F.expr(expression)
        kind = df.select(column.alias(field)).schema[field].dataType
    except ParseException as error:
        raise SourceError(f"{field}: {expression!r} is not a Spark SQL expression: "
                          f"{str(error).strip().splitlines()[0]}") from None
    except AnalysisException as error:
        if (error.getErrorClass() or "").startswith("UNRESOLVED_COLUMN"):
            columns = [c for c in df.columns if c != _ROW]
            raise SourceError(f"{field}: {expression!r} names a column the source does not have; its columns: "
                              f"{columns}") from None
        raise SourceError(f"{field}: {expression!r}: {str(error).strip().splitlines()[0]}") from None
    return column, kind


def _id(df: DataFrame, field: str, expression: str) -> Column:
    """An id as text: text as it is, a whole number as its exact decimal text; never through a floating type."""
    column, kind = _typed(df, field, expression)
    if isinstance(kind, StringType):
        return column
    if isinstance(kind, IntegralType) or (isinstance(kind, DecimalType) and kind.scale == 0):
        return column.cast("string")
    raise SourceError(f"{field}: {expression!r} is {kind.simpleString()}; an id must be text or a whole number "
                      "(a floating type cannot hold every id exactly: read the column as text)")


def _time(df: DataFrame, field: str, expression: str) -> Column:
    column, kind = _typed(df, field, expression)
    if isinstance(kind, (TimestampType, TimestampNTZType)):
        return column.cast("timestamp")
    hint = (f"use to_timestamp({expression}, 'its format'), e.g. 'yyyy-MM-dd HH:mm:ss'" if isinstance(kind, StringType)
            else f"seconds since the epoch? use timestamp_seconds({expression})" if isinstance(kind, NumericType)
            else f"use cast({expression} AS timestamp)")
    raise SourceError(f"{field}: {expression!r} is {kind.simpleString()}, not a timestamp: {hint}")


def _number(df: DataFrame, field: str, expression: str, cast: str, from_text: bool = False) -> Column:
    column, kind = _typed(df, field, expression)
    if isinstance(kind, (NumericType, BooleanType)) or (from_text and isinstance(kind, StringType)):
        return column.cast(cast)
    raise SourceError(f"{field}: {expression!r} is {kind.simpleString()}, not a number"
                      + (f" (text: cast({expression} AS double) if it holds numbers)"
                         if isinstance(kind, StringType) else ""))


_NUMBERS = {"TX_AMOUNT": "tx_amount", LABEL_COLUMN: "label"}  # the numeric contract fields: column -> mapping field


def mapped_columns(df: DataFrame, mapping: SourceMapping, row_number: Column | None = None,
                   from_text: bool = False) -> dict[str, Column]:
    """The columns ``apply`` selects, by name, as expressions over ``df``'s columns (checked as ``apply`` says),
    but TX_FRAUD: the label as given, a double (null when not mapped). ``from_text``: tx_amount, label and the own
    numeric features may be text, read as numbers (a JSON message's fields: ``message_schema``; text that is not
    a number gives null, ``unread_numbers`` says where)."""
    if mapping.transaction_id:
        transaction_id = _id(df, "transaction_id", mapping.transaction_id)
    elif row_number is not None:
        transaction_id = row_number.cast("string")
    else:
        raise SourceError("transaction_id: not mapped, and this source has no row numbers to stand for it (only "
                          "CSV and Parquet files have): map it to the source's transaction id")
    columns = {
        "TRANSACTION_ID": transaction_id,
        "TX_DATETIME": _time(df, "tx_datetime", mapping.tx_datetime),
        "CUSTOMER_ID": _id(df, "customer_id", mapping.customer_id),
        "TERMINAL_ID": (_id(df, "terminal_id", mapping.terminal_id) if mapping.terminal_id
                        else F.lit(SINGLE_TERMINAL)),
        "TX_AMOUNT": _number(df, "tx_amount", mapping.tx_amount, "double", from_text),
        LABEL_COLUMN: (_number(df, "label", mapping.label, "double", from_text) if mapping.label
                       else F.lit(None).cast("double")),  # as given: ``apply`` checks it is 0 or 1
    }
    for name, expression in mapping.features.items():
        columns[OWN_PREFIX + name] = _number(df, f"features.{name}", expression, "double", from_text)
    for name, expression in mapping.categorical.items():
        columns[OWN_PREFIX + name] = _typed(df, f"categorical.{name}", expression)[0].cast("string")
    return columns


def unread_numbers(df: DataFrame, mapping: SourceMapping) -> dict[str, tuple[str, str, Column]]:
    """The numeric fields of ``mapping`` (by mapped column: TX_AMOUNT, TX_FRAUD, OWN_<name>) whose expression gives
    text over ``df``, each with (its mapping field, its expression, a column holding that text where it is not a
    number, else null): what ``mapped_columns(from_text=True)`` read as null."""
    numeric = {column: (field, getattr(mapping, field)) for column, field in _NUMBERS.items()
               if getattr(mapping, field)}
    numeric.update({OWN_PREFIX + name: (f"features.{name}", e) for name, e in mapping.features.items()})
    unread = {}
    for column, (field, expression) in numeric.items():
        text, kind = _typed(df, field, expression)
        if isinstance(kind, StringType):
            unread[column] = (field, expression, F.when(text.cast("double").isNull(), text))
    return unread


def apply(df: DataFrame, mapping: SourceMapping, row_number: Column | None = None,
          message: bool = False) -> DataFrame:
    """``df`` (rows of the source's columns) -> the handbook columns, then the own features.

    Types: TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID text (a whole number as its exact decimal text); TX_DATETIME
    timestamp; TX_AMOUNT double; TX_FRAUD int (null when ``label`` is not mapped; a label other than 0 or 1 stops
    the job computing it, naming the transaction: ``raise_input_error``); ``OWN_<name>`` double for
    ``features``, text for ``categorical``. Nothing else of ``df`` is kept. ``row_number`` (an integral column,
    e.g. ``read_source``'s) is the transaction id when the mapping has none. ``message``: MESSAGE_COLUMN follows,
    the row's own columns as a JSON object (what the user's producer would send a stream reading with this mapping).
    Kafka messages are mapped by ``fraud.validation`` with ``message_schema``'s columns.

    Raises SourceError, naming the field, before any Spark job: an expression that does not parse, an unknown
    column (listing ``df``'s), tx_datetime not a timestamp, tx_amount / label / features not numbers, an id of a
    floating type, no transaction_id without ``row_number``.
    """
    columns = mapped_columns(df, mapping, row_number)
    label = columns[LABEL_COLUMN]
    columns[LABEL_COLUMN] = F.when(label.isNull() | label.isin(0, 1), label.cast("int")).otherwise(raise_input_error(
        F.concat(F.lit("source mapping: label is "), label.cast("string"), F.lit(" for transaction "),
                 F.coalesce(columns["TRANSACTION_ID"], F.lit("(null)")), F.lit("; a label is 1 (fraud) or 0"))))
    if message:
        columns[MESSAGE_COLUMN] = F.to_json(F.struct(*(F.col(f"`{c}`") for c in df.columns if c != _ROW)))
    return df.select(*(column.alias(name) for name, column in columns.items()))


# ---------------------------------------------------------------- mapping Kafka messages

# functions Spark calls without parentheses when no column has the name: in a message they are its fields (write
# current_date() for the function)
_NILADIC = ("current_date", "current_timestamp", "current_user", "session_user", "user")


def bare_column(expression: str | None) -> str | None:
    """The column an expression is, when it is nothing but a column name (``amt``, `` `amt` ``), else None."""
    text = (expression or "").strip()
    quoted = re.fullmatch(r"`((?:[^`]|``)+)`", text)
    return quoted.group(1).replace("``", "`") if quoted else text if _NAME.fullmatch(text) else None


def message_schema(spark: SparkSession, mapping: SourceMapping) -> StructType:
    """The top-level fields of a JSON message the mapping's expressions read, all as text: a JSON string as sent,
    any other token as its JSON text (a 19-digit card number sent as a number keeps every digit). tx_amount, label
    and the own numeric features read text as numbers (``mapped_columns(from_text=True)``: "12.50" or 12.5); Spark
    SQL casts text where an expression computes with it (``timestamp'2017-01-01' + make_dt_interval(0, step)``),
    not in every function (``timestamp_seconds(cast(ts AS double))``). A name is matched as written: JSON keys are
    case-sensitive.

    The fields are found by analysing each expression against the fields found so far (Spark names the first
    unknown column); a name Spark would read as a function without parentheses (``user``, ``current_date``) is a
    field. Raises SourceError, naming the field, for an expression that does not parse.
    """
    names: dict[str, None] = {}
    expressions = [(field, getattr(mapping, field)) for field in SourceMapping.model_fields
                   if isinstance(getattr(mapping, field), str)]
    expressions += [(f"features.{name}", e) for name, e in mapping.features.items()]
    expressions += [(f"categorical.{name}", e) for name, e in mapping.categorical.items()]
    for field, expression in expressions:
        names.update(dict.fromkeys(name for name in _NILADIC
                                   if re.search(rf"(?<![\w.`]){name}(?![\w`]|\s*\()", expression, re.IGNORECASE)))
        while True:
            schema = StructType([StructField(name, StringType()) for name in names])
            try:
                spark.createDataFrame([], schema).select(F.expr(expression))
                break
            except ParseException as error:
                raise SourceError(f"{field}: {expression!r} is not a Spark SQL expression: "
                                  f"{str(error).strip().splitlines()[0]}") from None
            except AnalysisException as error:
                named = re.match(r"`(?:[^`]|``)+`", (error.getMessageParameters() or {}).get("objectName") or "")
                unknown = bare_column(named.group(0)) if named else None  # a.b: its first part, the message's field
                if not (error.getErrorClass() or "").startswith("UNRESOLVED_COLUMN") or unknown is None \
                        or unknown in names:
                    break  # another fault: ``mapped_columns`` names it, on the typed fields
                names[unknown] = None
    return StructType([StructField(name, StringType()) for name in names])


# ---------------------------------------------------------------- reading files with a mapping

_ROW, _FILE, _BLOCK, _ORDER, _FIRST, _BEFORE = "__row", "__file", "__block", "__order", "__first", "__before"


def _numbered(df: DataFrame) -> DataFrame:
    """``df`` (as read from CSV or Parquet files) with ``_ROW``: the row's number, 1-based, in the files taken in
    path order, each from its first row to its last; the same on every read of the same files. Lazy: no job.

    A file is read in blocks, each by one task in order, so within a block the row order follows
    monotonically_increasing_id; the rows before a block are counted per block (path, start)."""
    located = df.select("*", F.col("_metadata.file_path").alias(_FILE),
                        F.col("_metadata.file_block_start").alias(_BLOCK),
                        F.monotonically_increasing_id().alias(_ORDER))
    blocks = located.groupBy(_FILE, _BLOCK).agg(F.min(_ORDER).alias(_FIRST), F.count("*").alias("rows"))
    before = F.sum("rows").over(Window.orderBy(_FILE, _BLOCK)) - F.col("rows")
    offsets = blocks.select(_FILE, _BLOCK, _FIRST, before.alias(_BEFORE))
    numbered = located.join(F.broadcast(offsets), [_FILE, _BLOCK])
    return numbered.select(*df.columns, (F.col(_BEFORE) + F.col(_ORDER) - F.col(_FIRST) + 1).alias(_ROW))


def _referenced(df: DataFrame, expressions: list[str]) -> set[str]:
    """The columns of ``df`` that any of ``expressions`` names (those it cannot be resolved without)."""
    def resolves(frame: DataFrame, expression: str) -> bool:
        try:
            return bool(frame.select(F.expr(expression)).schema)
        except AnalysisException:
            return False
    return {column for column in df.columns for expression in expressions
            if column.lower() in expression.lower() and not resolves(df.drop(column), expression)}


def read_source(spark: SparkSession, path: str | Path, mapping: SourceMapping, message: bool = False) -> DataFrame:
    """The transactions at ``path`` (CSV or Parquet files, a Delta table) mapped by ``mapping`` (``apply``, with
    ``message``).

    CSV: a header line, column types inferred from the whole file (one pass over it), except the columns the id
    fields name, read as text, so a card number above 2^53 (or 2^63) keeps every digit, and dates and times, read
    as the text the file holds, as a JSON message has them: one mapping (``to_timestamp(column, 'its format')``)
    reads the file and the stream. Without transaction_id,
    the id is the row number in the files (``_numbered``), for files only.

    Raises InputError for a path that does not exist or holds none of those formats, SourceError (naming the
    field) for a mapping that does not fit the source's columns."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory")
    fmt = input_format(path)
    if fmt == "csv":
        inferred = spark.read.options(header=True, inferSchema=True, mode="FAILFAST").csv(str(path))
        ids = _referenced(inferred, [expression for expression in (getattr(mapping, f) for f in IDS) if expression])
        text = [f.name for f in inferred.schema.fields
                if f.name in ids or isinstance(f.dataType, (DateType, TimestampType, TimestampNTZType))]
        schema = ", ".join(f"`{f.name}` {'string' if f.name in text else f.dataType.simpleString()}"
                           for f in inferred.schema.fields)
        df = spark.read.options(header=True, mode="FAILFAST").schema(schema).csv(str(path))
    else:
        df = spark.read.format(fmt).load(str(path))
    if mapping.transaction_id is None and fmt != "delta":
        mapped = apply(_numbered(df), mapping, F.col(_ROW), message)
    else:
        mapped = apply(df, mapping, message=message)
    return mapped.transform(_required)


_REQUIRED = {"TRANSACTION_ID": "transaction_id", "TX_DATETIME": "tx_datetime", "CUSTOMER_ID": "customer_id",
             "TX_AMOUNT": "tx_amount"}


def _required(mapped: DataFrame) -> DataFrame:
    """``mapped`` where a row whose transaction id, time, card or amount is null stops the job with an error
    naming the field and the row (a to_timestamp format that does not fit the text gives null, not an error)."""
    def checked(column: str, field: str) -> Column:
        where = F.coalesce(F.col("TRANSACTION_ID"), F.lit("(null)"))
        error = raise_input_error(F.concat(F.lit(f"source mapping: {field} gave no value for transaction "), where,
                                           F.lit(" (check its expression, e.g. the to_timestamp format)")))
        return F.when(F.col(column).isNull(), error).otherwise(F.col(column))
    return mapped.withColumns({column: checked(column, field) for column, field in _REQUIRED.items()})


def read_history(spark: SparkSession, path: str | Path, mapping: SourceMapping | None = None,
                 message: bool = False) -> DataFrame:
    """A transaction history for the batch commands: ``fraud.io.read_transactions`` without a mapping, else
    ``read_source`` (with ``message``); an id that breaks the id rules (``fraud.schemas.id_text_problem``: what the
    stream dead-letters) stops the job computing it, naming the transaction, the field and the rule
    (``raise_input_error``: an InputError from the CLI). Raises InputError / SourceError."""
    history = read_transactions(spark, path) if mapping is None else read_source(spark, path, mapping, message)
    return _checked_ids(history, path)


def _checked_ids(history: DataFrame, path: str | Path) -> DataFrame:
    """``history`` whose ids, when one breaks an id rule, stop the job naming the rule and the transaction."""
    shown = F.when(F.length("TRANSACTION_ID") > 40, F.concat(F.substring("TRANSACTION_ID", 1, 40), F.lit("…")))
    where = F.to_json(F.array(F.coalesce(shown, F.col("TRANSACTION_ID"))))  # quoted, control characters escaped
    rules = f"ids are 1 to {ID_MAX_CHARS} characters, without control characters or whitespace at either end"

    def checked(column: str) -> Column:
        problem = id_text_problem(F.col(column), column)
        return F.when(problem.isNotNull(), raise_input_error(F.concat(
            F.lit(f"{path}: "), problem, F.lit(" in the transaction "), where, F.lit(f"; {rules}")))
        ).otherwise(F.col(column))
    return history.withColumns({column: checked(column) for column in ID_COLUMNS})


def check_own_features(columns: list[str], features: list[str], data: str | Path) -> None:
    """Raises InputError naming the own features (``OWN_*``) among ``features`` (a model's) that ``columns`` (of
    the transactions read from ``data``) lack: data read without the mapping the model was trained with."""
    missing = [name for name in features if name.startswith(OWN_PREFIX) and name not in columns]
    if missing:
        raise InputError(f"{data}: no column(s) {missing}, the model's own features: read the data with the source "
                         "mapping (--source) the model was trained with (its metadata.json, 'source')")
