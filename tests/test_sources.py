"""Source mappings (``fraud.sources``): loading the YAML (no Spark), applying it to inline rows and to other people's
files in /work/shared/data/real (Sparkov, PaySim). These assert on the mapping's own output: ids are text."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from fraud.config import PROJECT_ROOT, ConfigError
from fraud.sources import SINGLE_TERMINAL, SourceError, SourceMapping, apply, load_source, read_source

REAL = PROJECT_ROOT.parent / "shared" / "data" / "real"
SPARKOV_TRAIN, PAYSIM = REAL / "sparkov_train_head.csv", REAL / "paysim_sample.csv"
SOURCES = PROJECT_ROOT / "conf" / "sources"

MINIMAL = """\
transaction_id: trans_num                       # omitted: the row number (files only)
tx_datetime: "to_timestamp(trans_date_trans_time, 'yyyy-MM-dd HH:mm:ss')"
customer_id: cc_num
terminal_id: merchant                           # omitted: one terminal for every row (a single shop)
tx_amount: amt
label: is_fraud                                 # training and evaluation only
features:                                       # the user's own numeric features, fed to the model
  seconds_since_signup: "unix_timestamp(purchase_time) - unix_timestamp(signup_time)"
categorical:                                    # the user's own categorical features
  category: category
"""


@pytest.fixture(scope="module")
def real_data():
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not available")
    return REAL


def _mapping(tmp_path: Path, text: str) -> SourceMapping:
    path = tmp_path / "source.yaml"
    path.write_text(text)
    return load_source(path)


# ---------------------------------------------------------------- the YAML

def test_the_minimal_mapping_loads_as_written(tmp_path):
    mapping = _mapping(tmp_path, MINIMAL)
    assert (mapping.customer_id, mapping.terminal_id, mapping.label) == ("cc_num", "merchant", "is_fraud")
    assert mapping.own_features == ["OWN_seconds_since_signup"] and mapping.own_categorical == ["OWN_category"]


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "colour: red\n", "unknown key 'colour'"),
    (MINIMAL.replace("tx_amount: amt\n", ""), "'tx_amount' is required"),
    (MINIMAL.replace("  category: category", "  2nd: category"), "feature names must be a letter"),
    (MINIMAL.replace("  category: category", "  Seconds_Since_Signup: x"), "both in features and categorical"),
    ("- a list\n", "must hold a mapping"),
    ("tx_amount: [unclosed\n", "is not valid YAML"),
])
def test_a_bad_mapping_file_names_what_is_wrong(tmp_path, text, message):
    with pytest.raises(SourceError, match=message) as raised:
        _mapping(tmp_path, text)
    assert isinstance(raised.value, ConfigError)  # the CLI's exit code 2


def test_a_missing_mapping_file_is_named(tmp_path):
    with pytest.raises(SourceError, match="source mapping not found: .*nowhere.yaml"):
        load_source(tmp_path / "nowhere.yaml")


# ---------------------------------------------------------------- apply, on inline rows

SOURCE_ROWS = [  # trans_num, time text, card (above 2^63), merchant, amt, is_fraud, category, purchase, signup
    ("t1", "2019-01-01 00:00:18", "4992346398065154184", "fraud_Rippin, Kub", 4.97, 0, "misc_net",
     datetime(2019, 1, 1, 0, 0, 18), datetime(2019, 1, 1)),
    ("t2", "2019-01-01 00:01:00", "9999999999999999999", "Heller", 107.25, 1, "grocery_pos",
     datetime(2019, 1, 1, 0, 1), datetime(2018, 12, 31)),
]
SOURCE_SCHEMA = ("trans_num string, trans_date_trans_time string, cc_num string, merchant string, amt double, "
                 "is_fraud int, category string, purchase_time timestamp, signup_time timestamp")


@pytest.fixture
def source(spark):
    return spark.createDataFrame(SOURCE_ROWS, SOURCE_SCHEMA)


def test_the_minimal_mapping_gives_the_handbook_columns_and_the_own_features(spark, source, tmp_path):
    mapped = apply(source, _mapping(tmp_path, MINIMAL))
    expected = spark.createDataFrame([
        ("t1", datetime(2019, 1, 1, 0, 0, 18), "4992346398065154184", "fraud_Rippin, Kub", 4.97, 0, 18.0, "misc_net"),
        ("t2", datetime(2019, 1, 1, 0, 1), "9999999999999999999", "Heller", 107.25, 1, 86460.0, "grocery_pos"),
    ], "TRANSACTION_ID string, TX_DATETIME timestamp, CUSTOMER_ID string, TERMINAL_ID string, TX_AMOUNT double, "
       "TX_FRAUD int, OWN_seconds_since_signup double, OWN_category string")
    assert mapped.schema == expected.schema
    assert sorted(mapped.collect()) == sorted(expected.collect())


def test_whole_number_ids_become_their_exact_decimal_text_and_no_terminal_is_one_shop(spark, tmp_path):
    source = spark.createDataFrame([(9007199254740993, 1.0)], "card bigint, amt double")  # 2^53 + 1
    mapped = apply(source.selectExpr("*", "timestamp'2020-01-01' AS at", "CAST(12345678901234567890123 AS "
                                     "DECIMAL(30,0)) AS num"),
                   _mapping(tmp_path, "transaction_id: num\ntx_datetime: at\ncustomer_id: card\ntx_amount: amt\n"))
    row = mapped.first()
    assert (row.TRANSACTION_ID, row.CUSTOMER_ID, row.TERMINAL_ID) == (
        "12345678901234567890123", "9007199254740993", SINGLE_TERMINAL)
    assert row.TX_FRAUD is None  # no label mapped: unknown


@pytest.mark.parametrize("change, message", [
    (("amt", "amount"), r"tx_amount: 'amount' names a column the source does not have; its columns: \['trans_num'"),
    (("amt", "amt +"), "tx_amount: 'amt \\+' is not a Spark SQL expression"),
    (('"to_timestamp(trans_date_trans_time, \'yyyy-MM-dd HH:mm:ss\')"', "trans_date_trans_time"),
     "tx_datetime: 'trans_date_trans_time' is string, not a timestamp: use to_timestamp\\(trans_date_trans_time, "
     "'its format'\\)"),
    (("tx_amount: amt", "tx_amount: merchant"), "tx_amount: 'merchant' is string, not a number"),
    (("label: is_fraud", "label: category"), "label: 'category' is string, not a number"),
    (("customer_id: cc_num", "customer_id: amt"), "customer_id: 'amt' is double; an id must be text or a whole"),
    (('"unix_timestamp(purchase_time) - unix_timestamp(signup_time)"', "category"),
     "features.seconds_since_signup: 'category' is string, not a number"),
    (("label: is_fraud", "label: nosuch(is_fraud)"), "label: 'nosuch\\(is_fraud\\)': .*UNRESOLVED_ROUTINE"),
])
def test_a_mapping_that_does_not_fit_the_source_fails_before_any_job_naming_the_field(source, tmp_path, change,
                                                                                       message):
    mapping = _mapping(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(SourceError, match=message):
        apply(source, mapping)


def test_without_transaction_id_a_source_needs_row_numbers(source, tmp_path):
    mapping = _mapping(tmp_path, MINIMAL.replace("transaction_id: trans_num", ""))
    with pytest.raises(SourceError, match="transaction_id: not mapped, and this source has no row numbers"):
        apply(source, mapping)


# ---------------------------------------------------------------- other people's files

def test_a_field_without_value_stops_the_read_naming_it(spark, real_data, tmp_path):
    text = (SOURCES / "paysim.yaml").read_text()
    wrong_format = text.replace("timestamp'2017-01-01 00:00:00' + make_dt_interval(0, step)",
                                "to_timestamp(concat('2017-01-01 ', step), 'yyyy-MM-dd HH:mm')")  # 1 is not HH:mm
    with pytest.raises(Exception, match=r"tx_datetime gave no value for transaction 1 \(check its expression"):
        read_source(spark, PAYSIM, _mapping(tmp_path, wrong_format)).collect()


@pytest.mark.parametrize("name, counts", [("sparkov_train_head.csv", (5039, 5039, 22)),
                                          ("sparkov_test_head.csv", (2145, 2145, 11))])
def test_both_sparkov_files_map(spark, real_data, name, counts):
    mapped = read_source(spark, REAL / name, load_source(SOURCES / "sparkov.yaml"))
    assert tuple(mapped.selectExpr("count(*)", "count(DISTINCT TRANSACTION_ID)", "sum(TX_FRAUD)").first()) == counts


def test_sparkov_maps_with_every_card_number_digit_kept(spark, real_data):
    mapped = read_source(spark, SPARKOV_TRAIN, load_source(SOURCES / "sparkov.yaml")).toPandas()
    raw = pd.read_csv(SPARKOV_TRAIN, dtype=str, keep_default_na=False)  # the file's own text
    assert len(mapped) == len(raw) == 5039 and int(mapped.TX_FRAUD.sum()) == 22
    assert mapped.CUSTOMER_ID.tolist() == raw.cc_num.tolist()  # no row reordered, every digit as written
    assert max(int(card) for card in mapped.CUSTOMER_ID) > 2 ** 53  # beyond what a double holds exactly
    assert mapped.TRANSACTION_ID.tolist() == raw.trans_num.tolist()
    assert mapped.TERMINAL_ID.iloc[0] == "fraud_Rippin, Kub and Mann"  # a comma inside quotes
    assert mapped.TX_DATETIME.iloc[0] == pd.Timestamp("2019-01-01 00:00:18")
    assert mapped.OWN_category.iloc[0] == "misc_net" and mapped.OWN_city_pop.iloc[0] == 3495.0


def test_paysim_maps_with_row_numbers_and_hours_from_the_documented_start(spark, real_data):
    mapped = read_source(spark, PAYSIM, load_source(SOURCES / "paysim.yaml")).toPandas()
    raw = pd.read_csv(PAYSIM)
    assert len(mapped) == 12651 and int(mapped.TX_FRAUD.sum()) == 325
    by_row = mapped.set_index(mapped.TRANSACTION_ID.astype(int)).sort_index()
    assert by_row.index.tolist() == list(range(1, len(raw) + 1))
    assert by_row.CUSTOMER_ID.tolist() == raw.nameOrig.tolist()  # row n is the file's n-th row
    assert (by_row.TX_DATETIME.to_numpy() == (pd.Timestamp("2017-01-01") + pd.to_timedelta(raw.step, "h"))
            .to_numpy()).all()
    assert set(mapped.OWN_type) == set(raw.type)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_row_numbers_are_the_same_on_every_read_and_follow_the_files_in_path_order(spark, real_data, tmp_path, kind):
    folder = tmp_path / "paysim"
    folder.mkdir()
    raw = pd.read_csv(PAYSIM)
    for name, part in (("part-1", raw.iloc[:5000]), ("part-2", raw.iloc[5000:])):
        if kind == "csv":
            part.to_csv(folder / f"{name}.csv", index=False)
        else:
            part.to_parquet(folder / f"{name}.parquet", index=False, row_group_size=500)
    mapping = load_source(SOURCES / "paysim.yaml")

    def numbering() -> list[str]:
        rows = read_source(spark, folder, mapping).toPandas()
        return rows.sort_values("TRANSACTION_ID", key=lambda ids: ids.astype(int)).CUSTOMER_ID.tolist()

    assert numbering() == raw.nameOrig.tolist()
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "65536")  # the files read in many blocks, several tasks
    try:
        blocks = spark.read.format(kind).load(str(folder)).select("_metadata.file_block_start").distinct()
        assert blocks.count() > 4
        assert numbering() == raw.nameOrig.tolist()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)


def test_a_mapped_column_the_csv_lacks_lists_the_file_columns(spark, real_data, tmp_path):
    mapping = _mapping(tmp_path, (SOURCES / "paysim.yaml").read_text().replace("amount\n", "amt\n"))
    with pytest.raises(SourceError, match=r"tx_amount: 'amt' names a column .*\['step', 'type', 'amount'"):
        read_source(spark, PAYSIM, mapping)
