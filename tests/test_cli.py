"""The ``fraud`` command line: help, defaults read from the settings, exit codes, error messages.

No service and no Spark: commands run with the function they call replaced, or are only parsed
(``fraud.cli.parse``). CliRunner goes through click's own entry, ``main`` through the one the
console script, fraud/run.py's children and jobs/ use; both must answer alike.
"""
from __future__ import annotations

import inspect
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

import fraud.cli
from fraud.cli import Invocation, cli, main, parse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONFIG = PROJECT_ROOT / "conf" / "local.yaml"

COMMANDS = ["stack", "init", "package-code", "features", "train", "evaluate", "backfill", "stream",
            "warm-start", "dashboard", "run", "produce", "data"]
DELAY_COMMANDS = {  # the commands taking --delay-days, with the least they need to parse
    "produce": ["produce", "--input", "history.parquet", "--rate", "10"],
    "features": ["features", "--input", "history.parquet", "--output", "features"],
    "backfill": ["backfill", "--input", "history.parquet"],
    "train": ["train"],
    "evaluate": ["evaluate", "--model", "models/default", "--test-start", "2018-08-29"],
}


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in ("FRAUD_CONFIG", "FRAUD_STREAM_DELAY_DAYS", "FRAUD_DASHBOARD_HOST", "FRAUD_DASHBOARD_PORT",
                 "FRAUD_STREAM_MODEL", "FRAUD_KAFKA_PORT", "FRAUD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)  # conf/local.yaml as it is


@pytest.fixture
def runner() -> CliRunner:
    separate = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}  # click 8.1
    return CliRunner(**separate)


@pytest.fixture
def replay(monkeypatch) -> list[dict]:
    """``fraud produce`` without Kafka: the history it would load and the replay it would start are recorded."""
    import fraud.producer
    calls: list[dict] = []
    monkeypatch.setattr(fraud.producer, "load_history", lambda path, start: [f"history of {path}"])

    def fake_replay(settings, history, pace, delay_days, limit=None, labels_due=None):
        calls.append({"history": history, "rate": pace.rate, "delay_days": delay_days, "limit": limit})
        return {"sent": 3, "labels": 1}
    monkeypatch.setattr(fraud.producer, "replay", fake_replay)
    return calls


def config_file(tmp_path, delay_days: int) -> str:
    path = tmp_path / "conf.yaml"
    path.write_text(f"base: {LOCAL_CONFIG}\nstream:\n  delay_days: {delay_days}\n")
    return str(path)


# ---------------------------------------------------------------- help

def test_the_top_level_help_lists_every_command_in_order(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == COMMANDS
    assert "--config PATH" in result.output and "--verbose" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_even_with_a_broken_configuration(runner, monkeypatch, name):
    monkeypatch.setenv("FRAUD_KAFKA_PORT", "abc")  # help must not need the settings
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: fraud {name} [OPTIONS]")
    description = cli.commands[name].help
    assert description and " ".join(description.split()[:6]) in " ".join(result.output.split())


@pytest.mark.parametrize("name", sorted(DELAY_COMMANDS))
def test_the_help_says_where_the_delay_default_comes_from(runner, name):
    text = " ".join(runner.invoke(cli, [name, "-h"]).output.split())
    assert "--delay-days INTEGER" in text and "(default: stream.delay_days)" in text


def test_help_answers_without_spark_sklearn_or_pandas():
    code = ("import sys, contextlib, io\n"
            "from fraud.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    codes = [main(['--help']), main(['stack', '--help']), main(['train', '--help'])]\n"
            "print(codes, sorted(m for m in ('pyspark', 'sklearn', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[0, 0, 0] []", done.stderr


# ---------------------------------------------------------------- defaults from the settings

@pytest.mark.parametrize("name", sorted(DELAY_COMMANDS))
def test_the_delay_default_follows_the_stream_setting(monkeypatch, tmp_path, name):
    argv = DELAY_COMMANDS[name]
    assert parse(argv)[1]["delay_days"] == 7  # conf/local.yaml
    monkeypatch.setenv("FRAUD_STREAM_DELAY_DAYS", "5")
    assert parse(argv) == (name, parse([*argv, "--delay-days", "5"])[1])
    assert parse([*argv, "--delay-days", "3"])[1]["delay_days"] == 3  # the option still wins
    monkeypatch.delenv("FRAUD_STREAM_DELAY_DAYS")
    assert parse(["--config", config_file(tmp_path, 9), *argv])[1]["delay_days"] == 9


def test_produce_replays_with_the_configured_delay(runner, replay, monkeypatch, tmp_path):
    monkeypatch.setenv("FRAUD_STREAM_DELAY_DAYS", "5")
    result = runner.invoke(cli, ["produce", "--input", "h.parquet", "--rate", "10", "--limit", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout == '{"sent": 3, "labels": 1}\n'  # the summary, one JSON line
    assert replay == [{"history": ["history of h.parquet"], "rate": 10.0, "delay_days": 5, "limit": 4}]

    monkeypatch.delenv("FRAUD_STREAM_DELAY_DAYS")
    assert runner.invoke(cli, ["--config", config_file(tmp_path, 9), "produce", "--input", "h.parquet",
                               "--rate", "10"]).exit_code == 0
    assert runner.invoke(cli, ["produce", "--input", "h.parquet", "--rate", "10", "--delay-days", "2"]).exit_code == 0
    assert [call["delay_days"] for call in replay] == [5, 9, 2]


def test_the_settings_are_loaded_once_per_invocation_from_the_group_config(runner, replay, monkeypatch, tmp_path):
    loads = []

    def counted(path=None, env=None):
        loads.append(path)
        return real(path, env)
    real = fraud.cli.load_settings
    monkeypatch.setattr(fraud.cli, "load_settings", counted)
    config = config_file(tmp_path, 6)
    assert runner.invoke(cli, ["--config", config, "produce", "--input", "h.parquet", "--rate", "1"]).exit_code == 0
    assert loads == [config] and replay[0]["delay_days"] == 6
    assert runner.invoke(cli, ["produce", "--input", "h.parquet", "--rate", "1"]).exit_code == 0
    assert loads == [config, None] and replay[1]["delay_days"] == 7  # a new invocation reads them again


def test_other_defaults_come_from_the_settings_too(monkeypatch):
    monkeypatch.setenv("FRAUD_DASHBOARD_PORT", "8123")
    monkeypatch.setenv("FRAUD_STREAM_MODEL", "models/elsewhere")
    assert parse(["dashboard"]) == ("dashboard", {"host": "127.0.0.1", "port": 8123})
    monkeypatch.setenv("FRAUD_STREAM_SOURCE", "conf/sources/sparkov.yaml")  # in the configuration: under the project
    assert parse(["stream"])[1] == {"model": "models/elsewhere", "sinks": "delta,mysql,elasticsearch,kafka",
                                    "source": str(PROJECT_ROOT / "conf" / "sources" / "sparkov.yaml"),
                                    "queries": "decision,delivery"}
    assert parse(["backfill", "--input", "h"])[1]["model"] == "models/default"


# ---------------------------------------------------------------- options as argparse read them

def test_later_weeks_takes_several_dates_like_before():
    options = parse(["train", "--later-weeks", "2018-08-15", "2018-08-22", "--test-days", "3"])[1]
    assert options["later_weeks"] == ("2018-08-15", "2018-08-22") and options["test_days"] == 3
    assert parse(["train", "--later-weeks", "2018-08-15", "--later-weeks", "2018-08-22"])[1]["later_weeks"] \
        == ("2018-08-15", "2018-08-22")
    assert parse(["train"])[1]["later_weeks"] == ()


@pytest.mark.parametrize("argv, message", [
    (["produce", "--input", "h", "--simulate", "--rate", "1"], "--simulate is not allowed with --input"),
    (["produce", "--input", "h"], "one of --rate, --speedup is required"),
    (["produce", "--rate", "1", "--speedup", "2"], "--speedup is not allowed with --rate"),
    (["backfill"], "Missing option '--input'"),
    (["stack", "restart"], "'restart' is not one of"),
    (["features", "--input", "h", "--output", "o", "--delay-days", "seven"], "'seven' is not a valid integer"),
    (["train", "--from-archive", "--data", "h"], "--from-archive is not allowed with --data"),
    (["train", "--from-archive", "--test-start", "2018-08-08"], "--from-archive is not allowed with --test-start"),
    (["train", "--from-archive", "--as-of", "yesterday"], "'yesterday' is not an ISO-8601 date-time"),
    (["train", "--from-archive", "--as-of", "2018-13-45"], "'2018-13-45' is not an ISO-8601 date-time"),
    (["train", "--train-days", "0"], "0 is not in the range x>=1"),
    (["evaluate", "--model", "m", "--test-start", "2018-08-08", "--test-days", "-3"], "-3 is not in the range x>=1"),
])
def test_usage_errors_exit_2_with_the_reason(runner, argv, message):
    result = runner.invoke(cli, argv, obj=Invocation(dry_run=True))  # were the line accepted, nothing would run
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_unknown_option_or_command_exits_2(runner, capsys, replay):
    result = runner.invoke(cli, ["backfill", "--input", "h", "--bogus"], obj=Invocation(dry_run=True))
    assert result.exit_code == 2 and "No such option" in result.stderr and "--bogus" in result.stderr
    result = runner.invoke(cli, ["backfil"])
    assert result.exit_code == 2 and "No such command 'backfil'" in result.stderr
    assert main(["produce", "--input", "h", "--rate", "1", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err and replay == []


# ---------------------------------------------------------------- configuration and operational errors

def test_a_bad_configuration_exits_2_with_its_message(runner, monkeypatch, capsys, replay):
    monkeypatch.setenv("FRAUD_KAFKA_PORT", "abc")
    result = runner.invoke(cli, ["stack", "status"])
    assert result.exit_code == 2
    assert result.stderr == "configuration error: 'kafka.port' must be an integer, got 'abc'\n"
    assert main(["produce", "--input", "h", "--rate", "1"]) == 2  # through the settings default of --delay-days
    assert capsys.readouterr().err == "configuration error: 'kafka.port' must be an integer, got 'abc'\n"
    assert replay == []


def test_parse_refuses_what_would_not_run(monkeypatch, capsys):
    with pytest.raises(click.UsageError, match="No such option"):
        parse(["stream", "--bogus"])
    monkeypatch.setenv("FRAUD_KAFKA_PORT", "abc")
    with pytest.raises(click.ClickException, match="exit code 2"):
        parse(["stream"])
    assert "'kafka.port' must be an integer" in capsys.readouterr().err


def test_a_missing_config_file_exits_2(runner, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(cli, ["--config", str(missing), "init"], obj=Invocation(dry_run=True))
    assert result.exit_code == 2 and result.stderr == f"configuration error: configuration file not found: {missing}\n"
    assert main(["--config", str(missing), "package-code", str(tmp_path)]) == 2
    assert not (tmp_path / "fraud-code.zip").exists()
    assert "configuration file not found" in capsys.readouterr().err


def test_a_known_operational_error_is_one_line_and_exit_1(runner, monkeypatch, tmp_path, capsys, replay):
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path))  # no transactions.parquet there
    result = runner.invoke(cli, ["produce", "--rate", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: transactions.parquet not found") and result.stderr.count("\n") == 1
    assert main(["produce", "--rate", "1"]) == 1
    assert capsys.readouterr().err.startswith("error: transactions.parquet not found") and replay == []


def test_an_unexpected_error_is_not_hidden(monkeypatch, replay):
    import fraud.producer

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(fraud.producer, "replay", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["produce", "--input", "h", "--rate", "1"])


def test_ctrl_c_exits_130_and_sigint_is_restored(runner, monkeypatch, replay):
    import fraud.producer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(fraud.producer, "load_history", interrupted)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell leaves it for a background job
    try:
        assert runner.invoke(cli, ["produce", "--input", "h", "--rate", "1"]).exit_code == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert main(["produce", "--input", "h", "--rate", "1"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_command_returns_its_exit_code(runner, monkeypatch):
    import fraud.stack.manager as manager
    monkeypatch.setattr(manager, "stack_status", lambda settings: [SimpleNamespace(healthy=False)])
    monkeypatch.setattr(manager, "stack_down", lambda settings: None)
    monkeypatch.setattr(manager, "format_status", lambda rows: "the table")
    result = runner.invoke(cli, ["stack", "status"])
    assert (result.exit_code, result.stdout) == (1, "the table\n")  # a service down
    assert main(["stack", "status"]) == 1
    assert main(["stack", "down"]) == 0
    assert parse(["stack", "up"]) == ("stack", {"action": "up"})  # parsed only: nothing started


@pytest.mark.parametrize("argv, missing", [(["evaluate", "--model", "m"], "--test-start"),
                                           (["evaluate", "--test-start", "2018-08-29"], "--model")])
def test_required_options_are_required(runner, argv, missing):
    result = runner.invoke(cli, argv)
    assert result.exit_code == 2 and f"Missing option '{missing}'" in result.output


@pytest.mark.parametrize("days", ["0", "-3"])
def test_a_label_delay_below_one_day_is_a_usage_error(runner, days):
    result = runner.invoke(cli, ["features", "--input", "x", "--output", "y", "--delay-days", days])
    assert result.exit_code == 2 and "--delay-days" in result.output


@pytest.mark.parametrize("option, value", [("--sinks", "foo"), ("--sinks", "mysql,bogus"), ("--queries", "bogus"),
                                           ("--queries", "")])
def test_stream_refuses_unknown_sinks_and_queries_before_starting(runner, option, value):
    result = runner.invoke(cli, ["stream", option, value])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output


def test_the_command_line_knows_the_same_sinks_as_the_sinks_module():
    from fraud.sinks import SINKS
    assert fraud.cli.SINKS == ",".join(SINKS)


def test_stream_refuses_a_missing_model_or_one_needing_own_features_before_a_jvm_starts(runner, monkeypatch, tmp_path):
    """A model trained with a source mapping's own features needs them in every message; the stream reads the
    contract's fields only, so it exits 2 naming them (not a query failing on its first micro-batch)."""
    import threading

    import fraud.stream
    from fraud.config import PROJECT_ROOT
    from fraud.stream.serving import unservable
    model = tmp_path / "sparkov"
    shutil.copytree(PROJECT_ROOT / "models" / "default", model)
    metadata = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**metadata, "features": [*metadata["features"], "OWN_category"]}))
    assert unservable(PROJECT_ROOT / "models" / "default") is None
    monkeypatch.setattr(fraud.stream, "stop_on_signals", threading.Event)  # no signal handlers in the test process
    monkeypatch.setenv("FRAUD_STREAM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    result = runner.invoke(cli, ["stream", "--model", str(model)])
    assert result.exit_code == 2, result.output
    assert f"the model {model} needs its source mapping's own features ['OWN_category']" in result.stderr
    missing = runner.invoke(cli, ["stream", "--model", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and f"no model under {tmp_path / 'nothing'}" in missing.stderr
    (model / "metadata.json").write_text("{not json")
    broken = runner.invoke(cli, ["stream", "--model", str(model)])
    assert broken.exit_code == 2 and f"{model / 'metadata.json'} is not a model's metadata" in broken.stderr


def test_retraining_options_alone_or_a_single_served_model_folder_exit_2_before_spark(runner, monkeypatch, tmp_path):
    import fraud.spark
    monkeypatch.setattr(fraud.spark, "spark_session", None)  # calling it would fail the test: nothing may start
    alone = runner.invoke(cli, ["train", "--as-of", "2018-05-01"])
    assert alone.exit_code == 2 and "--as-of goes with --from-archive" in alone.stderr
    monkeypatch.setenv("FRAUD_STREAM_MODEL", "models/default")
    single = runner.invoke(cli, ["train", "--from-archive"])
    assert single.exit_code == 2, single.output
    assert "stream.model is the model folder" in single.stderr and "stream.model: models" in single.stderr
