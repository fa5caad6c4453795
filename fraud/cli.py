"""``fraud``: command line of the real-time fraud detection system (click).

Heavy imports (Spark, scikit-learn) happen inside the sub-commands, so
``fraud --help`` and ``fraud stack status`` answer at once.

The settings are loaded once per invocation, when first needed: ``--config``, else
``$FRAUD_CONFIG`` or conf/local.yaml, with the ``FRAUD_*`` variables over it. An option
whose default is a setting reads it from there and names it in its help ("default:
stream.delay_days"), so that, for instance, the backfill, the producer and the stream
cannot silently assume different label delays.

Exit codes: 0 done; 1 a known operational failure (one ``error: ...`` line on stderr) or an
unhealthy stack; 2 a usage or configuration error; 130 Ctrl-C.
"""
from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from fraud.config import PROJECT_ROOT, ConfigError, load_settings

if TYPE_CHECKING:  # the CLI only needs load_settings, ConfigError and the settings' attributes
    import pandas as pd

    from fraud.config import Settings
    from fraud.sources import SourceMapping

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

SINKS = "delta,mysql,elasticsearch,kafka"


class Invocation:
    """One run of ``fraud``: the group's options, and the settings, loaded on first use and then kept.

    ``dry_run``: the sub-command's options and the settings are read, but it does not run (``parse``)."""

    def __init__(self, config: str | None = None, verbose: bool = False, dry_run: bool = False):
        self.config, self.verbose, self.dry_run = config, verbose, dry_run
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


def _invocation() -> Invocation:
    return click.get_current_context().ensure_object(Invocation)


def from_settings(key: str) -> Callable[[], Any]:
    """A default read from the settings at dotted ``key`` (e.g. ``stream.delay_days``) when the command runs."""
    def default() -> Any:
        value: Any = _invocation().settings
        for part in key.split("."):
            value = getattr(value, part)
        return value
    return default


# ---------------------------------------------------------------- options several commands take

def setting_option(*decls: str, key: str, help: str, **kwargs: Any) -> Decorator:
    """An option whose default is the setting ``key``; its help says so."""
    return click.option(*decls, default=from_settings(key), help=f"{help} (default: {key})", **kwargs)


def delay_days_option(help: str = "label delay") -> Decorator:
    """``--delay-days``: one label delay for the producer, features, training, backfill and stream."""
    return setting_option("--delay-days", key="stream.delay_days", type=click.IntRange(min=1), help=help)


def input_option(help: str, required: bool = False) -> Decorator:
    return click.option("--input", required=required, metavar="PATH", help=help)


def dataset_option(*decls: str, help: str = "transactions") -> Decorator:
    """A transaction history; without it, the configured data_dir's transactions.parquet (``_dataset_or``)."""
    return click.option(*decls, metavar="PATH", help=f"{help} (default: the configured data_dir's "
                                                     "transactions.parquet)")


def _source(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from fraud.sources import load_source  # raises SourceError, a ConfigError: exit code 2 before any work
    return None if value is None else load_source(value)


def _source_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The stream's ``--source``: the mapping file, loaded and checked, as an absolute path (the delivery process
    reads it too); a relative path is under the current directory on the command line, under the project in the
    configuration (stream.source)."""
    if value is None:
        return None
    given = ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE
    path = Path(value).resolve() if given else PROJECT_ROOT / value
    if _source(ctx, param, str(path)).transaction_id is None:
        from fraud.sources import SourceError
        raise SourceError(f"source mapping {path}: transaction_id: not mapped, and a stream has no row numbers to "
                          "stand for it: map it to your messages' transaction id")
    return str(path)


def source_option(input_name: str = "--input") -> Decorator:
    """``--source FILE.yaml``: the input is the user's own data, mapped to the handbook columns by that mapping
    (``fraud.sources``); loaded and checked when the options are read."""
    return click.option("--source", metavar="FILE.yaml", callback=_source,
                        help=f"source mapping: {input_name} is your own data, each handbook field a Spark SQL "
                             "expression over its columns, plus your own features (conf/sources/ has examples; "
                             "default: the handbook's columns)")


def model_option(help: str, required: bool = False, default: str | None = None) -> Decorator:
    if required:  # click skips the required check when a default (even None) is given
        return click.option("--model", required=True, metavar="PATH", help=help)
    return click.option("--model", default=default, metavar="PATH", help=help)


def subset_of(choices: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """An option callback: the value must be a comma-separated, non-empty subset of ``choices`` (comma-separated)."""
    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        unknown = sorted(set(value.split(",")) - set(choices.split(",")))
        if unknown or not value:
            raise click.BadParameter(f"{unknown or 'nothing'}: choose from {choices}")
        return value
    return check


def sinks_option() -> Decorator:
    return click.option("--sinks", default=SINKS, callback=subset_of(SINKS),
                        help=f"comma-separated subset of {SINKS} (default: all)")


def rate_option(help: str, default: float | None = None) -> Decorator:
    return click.option("--rate", type=float, default=default, help=help)


def test_start_option(default: str | None = None) -> Decorator:
    if default is None:  # click skips the required check when a default (even None) is given
        return click.option("--test-start", required=True, metavar="DATE", help="first test day")
    return click.option("--test-start", default=default, metavar="DATE", help=f"first test day (default {default})")


def test_days_option() -> Decorator:
    return click.option("--test-days", type=click.IntRange(min=1), default=7, help="test days (default 7)")


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """An ISO-8601 date or date-time (``Z`` or an offset: converted to UTC; none: UTC), as a datetime."""
    try:
        return None if value is None else datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 date-time (2026-11-30, 2026-11-30T08:00:00Z, "
                                 "2026-11-30T08:00:00+05:30)") from None


def _dataset_or(path: str | None, settings: Settings) -> str:
    from fraud.data import dataset_path
    return path or str(dataset_path(settings))


# ---------------------------------------------------------------- the group and its commands

class _Command(click.Command):
    """A ``fraud`` sub-command. ``one_of``: groups of option names of which at most one may be given (exactly one
    if the group is required); ``needs``: (option, the option it goes with) name pairs; ``variadic``: options that
    take the values up to the next option
    (``--later-weeks A B C``, as with argparse's nargs="*"; repeating the option works too)."""

    def __init__(self, *args: Any, one_of: Sequence[tuple[Sequence[str], bool]] = (),
                 needs: Sequence[tuple[str, str]] = (), variadic: Sequence[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.one_of, self.needs, self.variadic = one_of, needs, tuple(variadic)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, _spread(args, self.variadic))
        flags = {param.name: param.opts[0] for param in self.params}
        for names, required in self.one_of:
            given = [name for name in names if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
            if len(given) > 1:
                raise click.UsageError(f"{flags[given[1]]} is not allowed with {flags[given[0]]}", ctx)
            if required and not given:
                raise click.UsageError(f"one of {', '.join(flags[name] for name in names)} is required", ctx)
        for name, needed in self.needs:
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE and not ctx.params.get(needed):
                raise click.UsageError(f"{flags[name]} goes with {flags[needed]}", ctx)
        return rest


def _spread(args: list[str], options: tuple[str, ...]) -> list[str]:
    """``--opt A B C`` -> ``--opt A --opt B --opt C`` for each of ``options``; a bare ``--opt`` gives no value."""
    out: list[str] = []
    current = None
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if arg in options:
            current = arg
        elif current and not arg.startswith("-"):
            out += [current, arg]
        else:
            current = next((option for option in options if arg.startswith(f"{option}=")), None)
            out.append(arg)
    return out


class _Group(click.Group):
    """``fraud``: its commands' return values are exit codes, and failures it knows become a message and a code
    (so ``fraud`` behaves the same through ``main`` and through click's own entry, CliRunner included)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined below, not alphabetical

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)  # reads the command's options (maybe the settings too), then runs it
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            raise click.exceptions.Exit(2) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:  # turn known operational failures into one readable line
            from fraud.io import raised_input_error
            known = raised_input_error(exc) or exc  # a Spark job stopped by a row of the input
            if not _operational(known):
                raise
            click.echo(f"error: {known}", err=True)
            raise click.exceptions.Exit(1) from None
        if isinstance(code, int) and code != 0:
            raise click.exceptions.Exit(code)
        return code


def _operational(exc: Exception) -> bool:
    from fraud.bootstrap import MigrationError
    from fraud.data import DatasetMissing
    from fraud.io import InputError
    from fraud.jvm import MissingJarsError
    from fraud.stack.process import ServiceError
    from fraud.stream.queries import StreamStopped
    return isinstance(exc, (ServiceError, MissingJarsError, DatasetMissing, InputError, MigrationError, StreamStopped))


@click.group("fraud", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             help="Real-time e-commerce fraud detection: local stack, streaming scorer, producer, features, "
                  "training, backfill.")
@click.option("--config", metavar="PATH", help="YAML configuration (default: $FRAUD_CONFIG or conf/local.yaml)")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
    invocation = ctx.ensure_object(Invocation)
    invocation.config, invocation.verbose = config, verbose
    if invocation.dry_run:
        return
    # Ctrl-C raises KeyboardInterrupt even when started in the background by a shell, which sets SIGINT to
    # "ignore" for its children (and `fraud run` stops its own children with SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("py4j", "mysql.connector", "elastic_transport"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def command(name: str, summary: str, description: str | None = None, **kwargs: Any) -> Callable[..., click.Command]:
    """Register ``fraud NAME``: ``summary`` in the command list, ``description`` (else the summary) atop its
    --help. The function gets the settings, then the options as keywords, and returns the exit code."""
    def register(function: Callable[..., int]) -> click.Command:
        @functools.wraps(function)
        def run(**options: Any) -> Any:
            invocation = _invocation()
            settings = invocation.settings  # a dry run checks the configuration too
            if invocation.dry_run:
                return name, options
            return function(settings, **options)
        return cli.command(name, cls=_Command, short_help=summary, help=description or summary, **kwargs)(run)
    return register


@command("stack", "start, stop or inspect the local Kafka / Elasticsearch / MariaDB stack",
         "Local services without Docker. Ports and state directory come from the configuration "
         "(FRAUD_KAFKA_PORT, FRAUD_ELASTICSEARCH_PORT, FRAUD_MYSQL_PORT, FRAUD_STATE_DIR override it).")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
def _stack(settings: Settings, action: str) -> int:
    from fraud.stack.manager import format_status, stack_down, stack_status, stack_up
    if action == "up":
        stack_up(settings)
    elif action == "down":
        stack_down(settings)
    rows = stack_status(settings)
    print(format_status(rows))
    return 0 if action == "down" or all(r.healthy for r in rows) else 1


@command("init", "create topics, MySQL tables and the Elasticsearch index (idempotent; `stack up` runs it, use it "
                 "for the compose stack or your own services)")
def _init(settings: Settings) -> int:
    from fraud.bootstrap import bootstrap
    print(json.dumps(bootstrap(settings)))
    return 0


@command("package-code", "zip the fraud, training and udfs packages for spark-submit --py-files; prints the zip's "
                         "path",
         "Zips the fraud, training and udfs packages for spark-submit --py-files into DEST/fraud-code.zip "
         "(DEST: default dist) and prints the zip's path.")
@click.argument("dest", required=False, default="dist")
def _package_code(settings: Settings, dest: str) -> int:
    from fraud.spark import package_code
    print(package_code(Path(dest)))
    return 0


@command("features", "compute the handbook and extra features of a transaction history",
         "Reads Parquet, CSV or a Delta table with the handbook columns (or the Kafka message names; with --source, "
         "any columns the mapping turns into them) and writes Parquet: the input columns, the 14 handbook features "
         "under their handbook names, and the extras.")
@input_option("Parquet file/folder, CSV file/folder or Delta table", required=True)
@source_option()
@click.option("--output", required=True, metavar="PATH", help="Parquet folder to write (replaced)")
@delay_days_option("label delay for terminal risk")
def _features(settings: Settings, input: str, source: SourceMapping | None, output: str, delay_days: int) -> int:
    from fraud.features_spark import add_all_features
    from fraud.sources import read_history
    from fraud.spark import spark_session

    with spark_session(settings, "fraud-features") as spark:
        transactions = read_history(spark, input, source)
        add_all_features(transactions, delay_days=delay_days).write.mode("overwrite").parquet(output)
        rows = spark.read.parquet(output).count()
    print(json.dumps({"input": input, "output": output, "rows": rows}))
    return 0


@command("train", "train and evaluate a model (handbook protocol, or a time split on your own data)",
         "Trains on the N days ending --delay-days before --test-start and tests on the --test-days from "
         "--test-start: on the handbook's data its test set (known-compromised cards removed), on other data "
         "(--source) every transaction of those days. Prints one JSON line with auc, ap, cp100 and cp100_by_day (and, "
         "on the handbook's data, cp100_ceiling: the CP@100 of an oracle catching every card the delayed labels can "
         "reveal); with --model-out also writes the model, its metadata and a report, and adds the precision and "
         "recall at the review and block thresholds. With --source, the mapping's own features join the model's. "
         "--from-archive trains on the stream's Delta archive instead (README: Retraining from the archive) and "
         "publishes the candidate for the stream only if it beats the served model; it prints the outcome.",
         variadic=("--later-weeks",), needs=(("as_of", "from_archive"), ("metric", "from_archive")),
         one_of=tuple(((name, "from_archive"), False) for name in ("data", "source", "test_start", "model_out",
                                                                   "later_weeks")))
@dataset_option("--data")
@source_option("--data")
@test_start_option(default="2018-08-08")
@click.option("--train-days", type=click.IntRange(min=1),
              help="training days (default: the recipe's; 56 shipped, 7 baseline)")
@delay_days_option("label delay between training and test")
@test_days_option()
@click.option("--recipe", type=click.Choice(["shipped", "baseline"]), default="shipped",
              help="shipped: the product's model; baseline: the handbook's default random forest")
@click.option("--model-out", metavar="PATH", help="folder to write the model to, e.g. models/NAME")
@click.option("--later-weeks", multiple=True, metavar="DATE [DATE ...]",
              help="more test-week starts to measure the saved model on")
@click.option("--from-archive", is_flag=True,
              help="train on the stream's Delta archive (transactions_raw and labels) as of --as-of: test on the "
                   "latest days whose labels are all due, publish into stream.model only if better on --metric")
@click.option("--as-of", metavar="TIME", callback=_instant,
              help="with --from-archive: what the archive held then (ISO-8601; no offset: UTC; default: now)")
@click.option("--metric", type=click.Choice(["ap", "auc", "cp100"]), default="ap",
              help="with --from-archive: what the candidate must beat the served model on (default ap)")
def _train(settings: Settings, data: str | None, source: SourceMapping | None, test_start: str,
           train_days: int | None, delay_days: int, test_days: int, recipe: str, model_out: str | None,
           later_weeks: tuple[str, ...], from_archive: bool, as_of: datetime | None, metric: str) -> int:
    import dataclasses

    from fraud.spark import spark_session
    from training.protocol import Split, parse_day
    from training.train import handbook_baseline, shipped_recipe, train

    chosen = handbook_baseline() if recipe == "baseline" else shipped_recipe()
    if train_days:
        chosen = dataclasses.replace(chosen, train_days=train_days)
    if from_archive:
        from fraud.retrain import plan_retraining, retrain_from_archive
        plan = plan_retraining(settings, as_of, metric)  # configuration errors before Spark starts
        with spark_session(settings, "fraud-retrain") as spark:
            outcome = retrain_from_archive(spark, settings, plan, chosen, delay_days, test_days)
        print(json.dumps(outcome))
        return 0
    split = Split(parse_day(test_start), chosen.train_days, delay_days, test_days)
    with spark_session(settings, "fraud-train") as spark:
        metrics, artifact = train(spark, _dataset_or(data, settings), split, chosen, model_out,
                                  tuple(parse_day(week) for week in later_weeks), source)
    print(json.dumps({**metrics, **split.describe(), "recipe": recipe,
                      **({"model": artifact.version, "metrics_by_week": artifact.metadata["metrics"]}
                         if artifact else {})}))
    return 0


@command("evaluate", "measure a trained model on any test week (handbook protocol, or a time split on your own data)",
         "Tests a trained model on any week: the handbook's test set on its data, every transaction of the test "
         "days on other data (--source). Prints one JSON line with auc, ap, cp100, cp100_by_day, the precision and "
         "recall at the model's review and block thresholds (and cp100_ceiling on the handbook's data). A model "
         "trained with a mapping's own features needs data read with that mapping.")
@model_option("model folder (e.g. models/default)", required=True)
@dataset_option("--data")
@source_option("--data")
@test_start_option()
@test_days_option()
@delay_days_option()
def _evaluate(settings: Settings, model: str, data: str | None, source: SourceMapping | None, test_start: str,
              test_days: int, delay_days: int) -> int:
    from fraud.spark import spark_session
    from training.protocol import Split, parse_day
    from training.train import evaluate

    split = Split(parse_day(test_start), 7, delay_days, test_days)
    with spark_session(settings, "fraud-evaluate") as spark:
        metrics = evaluate(spark, model, _dataset_or(data, settings), split, source)
    print(json.dumps({**metrics, "model": model, "test_start": split.test_start.isoformat(),
                      "test_days": split.test_days}))
    return 0


@command("backfill", "score a transaction history and write it to the sinks",
         "The stream's features and scoring over historical Parquet, CSV or Delta; one row per transaction in each "
         "sink, also on a rerun.")
@input_option("Parquet, CSV or Delta transaction history", required=True)
@source_option()
@model_option("model folder (default models/default)", default="models/default")
@sinks_option()
@delay_days_option("label delay for terminal risk")
def _backfill(settings: Settings, input: str, source: SourceMapping | None, model: str, sinks: str,
              delay_days: int) -> int:
    from fraud.backfill import backfill
    from fraud.spark import spark_session

    with spark_session(settings, "fraud-backfill") as spark:
        report = backfill(spark, settings, input, model, tuple(sinks.split(",")), delay_days, source)
    print(json.dumps(report))
    return 0


@command("stream", "the streaming scorer: Kafka in; dead letters, archive and scored transactions out (runs until "
                   "Ctrl-C)",
         "Reads transactions.raw and transactions.labels. Invalid records go to transactions.deadletter and MySQL "
         "dead_letters with their reason; valid ones are archived in Delta, scored with per-card and per-terminal "
         "state and written to transactions.scored, MySQL, Elasticsearch and Delta. Settings: the stream section "
         "of the configuration (FRAUD_STREAM_*).")
@setting_option("--model", key="stream.model", metavar="PATH",
                help="model folder, or a folder of them whose newest is served and hot-reloaded")
@sinks_option()
@setting_option("--source", key="stream.source", metavar="FILE.yaml", callback=_source_file,
                help="source mapping: the messages on the transaction and label topics are your own JSON, each "
                     "contract field a Spark SQL expression over their fields, plus your own features "
                     "(conf/sources/ has examples; none: the message contract)")
@click.option("--queries", default="decision,delivery", callback=subset_of("decision,delivery"),
              help="decision (Kafka in, decisions out), delivery (MySQL, Elasticsearch, Delta), or both (default: "
                   "both; outside spark-submit the delivery query runs in a second, lower-priority process)")
def _stream(settings: Settings, model: str, source: str | None, sinks: str, queries: str) -> int:
    from fraud.stream import stop_on_signals
    stop = stop_on_signals()  # first: a SIGTERM while Spark starts is a clean stop too

    from fraud.sources import stream_source
    from fraud.spark import launched_by_spark_submit, spark_session
    from fraud.stream.queries import (
        DECISION,
        DELIVERED,
        DELIVERY,
        STOP_TIMEOUT_S,
        DeliveryProcess,
        check_checkpoints,
        run_stream,
    )
    from fraud.stream.serving import check_servable

    settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"source": source})})
    check_checkpoints(settings)  # in seconds, before a JVM starts
    if DECISION in queries.split(","):
        check_servable(model or settings.stream.model, stream_source(settings))

    parts = tuple(queries.split(","))
    delivery = None
    if parts == (DECISION, DELIVERY) and not launched_by_spark_submit() and set(sinks.split(",")) & set(DELIVERED):
        parts = (DECISION,)  # the delivery query runs beside, in its own process
        config = _invocation().config
        delivery = DeliveryProcess([*(["--config", config] if config else []), "stream", "--sinks", sinks,
                                    *(["--source", source] if source else []), "--queries", DELIVERY],
                                   settings.stream.delivery_nice)
    app_name = "fraud-stream" if len(parts) > 1 else f"fraud-{parts[0]}"  # a cluster's application list shows it
    try:
        with spark_session(settings, app_name, ui=settings.stream.spark_ui,
                           extra_conf={"spark.ui.showConsoleProgress": "false",
                                       "spark.sql.streaming.stopTimeout": f"{STOP_TIMEOUT_S}s"}) as spark:
            run_stream(spark, settings, tuple(sinks.split(",")), stop, model, parts, delivery)
    finally:  # also when the decision side cannot start: a delivery left running would hold its checkpoint
        if delivery is not None:
            delivery.stop()
    return 0


@command("warm-start", "seed a new stream's card and terminal state from history",
         "Writes the card and terminal histories of the look-back before the newest transaction of a history into "
         "the stream's state (under stream.checkpoint_dir), so a new deployment scores its first transactions with "
         "full features. Only a state that has not run yet is seeded.", needs=(("source", "input"),))
@input_option("Parquet / CSV / Delta history in the handbook's columns (default: the stream's own Delta archive, "
              "transactions_raw with its labels)")
@source_option()
def _warm_start(settings: Settings, input: str | None, source: SourceMapping | None) -> int:
    from fraud.spark import spark_session
    from fraud.stream.warm_start import warm_start

    with spark_session(settings, "fraud-warm-start") as spark:
        print(json.dumps(warm_start(spark, settings, input, source)))
    return 0


@command("dashboard", "the live web dashboard (reads Elasticsearch and MySQL)",
         "Serves the live dashboard: incoming transaction patterns, alerts (searchable), model performance as labels "
         "arrive, pipeline health. Settings: the dashboard section of the configuration (FRAUD_DASHBOARD_*).")
@setting_option("--host", key="dashboard.host", help="address to bind")
@setting_option("--port", key="dashboard.port", type=int, help="port")
def _dashboard(settings: Settings, host: str, port: int) -> int:
    from fraud.dashboard import serve
    serve(settings, host, port)
    return 0


@command("run", "the whole pipeline on the local stack: stack up, stream, producer, live counts (what `make run` "
                "starts; Ctrl-C stops it)",
         "Starts the stack, the streaming scorer and a producer (the published dataset when the data directory has "
         "it, else the simulator), resuming after the last scored transaction, and prints counts every 10 s.")
@rate_option("producer events per second (default 500)", default=500)
@model_option("model folder or folder of them (default: stream.model)")
def _run(settings: Settings, rate: float, model: str | None) -> int:
    from fraud.run import run_pipeline
    return run_pipeline(settings, rate, model, _invocation().config)


@command("produce", "replay transactions to Kafka in event-time order, labels after the delay",
         "Sends transactions to transactions.raw (JSON keyed by customer) and each label to transactions.labels "
         "once event time + the delay has passed.",
         epilog="--simulate excludes --input and --source; --as-sent needs --source; exactly one of --rate and "
                "--speedup is required.",
         one_of=((("input", "simulate"), False), (("source", "simulate"), False), (("rate", "speedup"), True)),
         needs=(("as_sent", "source"),))
@dataset_option("--input", help="Parquet or CSV history")
@source_option()
@click.option("--as-sent", is_flag=True, help="with --source: send each row in the file's own columns (as JSON; "
                                              "its label message is the same row), what your own producer sends to a "
                                              "stream reading them with that mapping (fraud stream --source), instead "
                                              "of the message contract's fields")
@click.option("--simulate", is_flag=True, help="an endless generated stream: the handbook's fraud scenarios plus "
                                               "card testing and account takeover")
@click.option("--customers", type=int, default=5000, help="with --simulate (default 5000)")
@click.option("--terminals", type=int, default=10000, help="with --simulate (default 10000)")
@click.option("--seed", type=int, default=0, help="with --simulate (default 0)")
@rate_option("events per second (wall clock)")
@click.option("--speedup", type=float, help="event time runs this many times faster than real time")
@click.option("--limit", type=int, help="send at most N transactions")
@click.option("--start", metavar="TIME", help="first event time to send (e.g. 2018-08-01); with --simulate, the "
                                              "first simulated day (default 2026-01-01)")
@click.option("--first-id", type=int, default=0, help="with --simulate: first transaction id (default 0)")
@delay_days_option()
def _produce(settings: Settings, input: str | None, source: SourceMapping | None, as_sent: bool, simulate: bool,
             customers: int, terminals: int, seed: int, rate: float | None, speedup: float | None, limit: int | None,
             start: str | None, first_id: int, delay_days: int) -> int:
    from fraud.producer import Pace, labels_still_due, load_history, replay

    labels_due = None
    if simulate:
        from fraud.simulator import Simulator
        first_day = datetime.fromisoformat(start) if start else datetime(2026, 1, 1)
        history = Simulator(customers, terminals, seed=seed, start=first_day, first_id=first_id).transactions()
    else:
        dataset: str | pd.DataFrame = _dataset_or(input, settings)
        if source is not None:  # mapped once, in Spark, then replayed like any history
            from fraud.producer import mapped_history
            from fraud.spark import spark_session
            with spark_session(settings, "fraud-produce-mapping") as spark:
                dataset = mapped_history(spark, dataset, source, as_sent)
        history = load_history(dataset, start)
        if start:  # a resumed replay also sends the labels the earlier one had not reached yet
            labels_due = labels_still_due(dataset, start, delay_days)
    summary = replay(settings, history, Pace(rate=rate, speedup=speedup), delay_days, limit=limit,
                     labels_due=labels_due)
    print(json.dumps(summary))
    return 0


@command("data", "download the published handbook dataset (needs internet access)")
@click.option("--target", metavar="PATH", help="folder to write to (default: the configured data_dir)")
@click.option("--force", is_flag=True, help="download even if present")
def _data(settings: Settings, target: str | None, force: bool) -> int:
    from fraud.data import TRANSACTIONS, fetch_dataset
    folder = Path(target) if target else (settings.data_dir or Path("data/fdh"))
    if (folder / TRANSACTIONS).exists() and not force:
        print(f"dataset already present in {folder} (use --force to download again)")
        return 0
    fetch_dataset(folder)
    print(f"dataset written to {folder}; set FRAUD_DATA_DIR={folder.resolve()} if it is not the default")
    return 0


# ---------------------------------------------------------------- entry points

def parse(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The sub-command ``argv`` (the arguments after ``fraud``) names and its option values, defaults read from
    the settings, without running it. Raises click.UsageError on an unknown command or option or a bad value,
    and click.ClickException when no command would run (a bad configuration, whose message is printed; --help).
    For checks of the command lines other files hold (docker-compose.yml)."""
    outcome = cli.main(args=list(argv), prog_name="fraud", standalone_mode=False, obj=Invocation(dry_run=True))
    if not isinstance(outcome, tuple):
        raise click.ClickException(f"`fraud {' '.join(argv)}` runs no command (exit code {outcome})")
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run ``fraud`` with ``argv`` (default: the process's arguments) and return its exit code."""
    try:
        return int(cli.main(args=argv, prog_name="fraud", standalone_mode=False) or 0)
    except click.ClickException as exc:  # usage: an unknown command or option, a missing or bad value
        exc.show()
        return exc.exit_code
    except click.Abort:  # Ctrl-C before a command started
        return 130


if __name__ == "__main__":
    sys.exit(main())
