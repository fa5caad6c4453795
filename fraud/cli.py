"""``fraud``: command line of the real-time fraud detection system.

Heavy imports (Spark, scikit-learn) happen inside the sub-commands, so
``fraud --help`` and ``fraud stack status`` answer at once.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from fraud.config import ConfigError, load_settings


def _stack(args, settings) -> int:
    from fraud.stack.manager import format_status, stack_down, stack_status, stack_up
    if args.action == "up":
        stack_up(settings)
    elif args.action == "down":
        stack_down(settings)
    rows = stack_status(settings)
    print(format_status(rows))
    return 0 if args.action == "down" or all(r.healthy for r in rows) else 1


def _package_code(args, settings) -> int:
    from fraud.spark import package_code
    print(package_code(Path(args.dest)))
    return 0


def _init(args, settings) -> int:
    from fraud.bootstrap import bootstrap
    print(json.dumps(bootstrap(settings)))
    return 0


def _features(args, settings) -> int:
    from fraud.features_spark import add_all_features
    from fraud.io import read_transactions
    from fraud.spark import spark_session

    with spark_session(settings, "fraud-features") as spark:
        transactions = read_transactions(spark, args.input)
        add_all_features(transactions, delay_days=args.delay_days).write.mode("overwrite").parquet(args.output)
        rows = spark.read.parquet(args.output).count()
    print(json.dumps({"input": args.input, "output": args.output, "rows": rows}))
    return 0


def _dataset_or(path: str | None, settings) -> str:
    from fraud.data import dataset_path
    return path or str(dataset_path(settings))


def _train(args, settings) -> int:
    import dataclasses

    from fraud.spark import spark_session
    from training.protocol import Split, parse_day
    from training.train import handbook_baseline, shipped_recipe, train

    recipe = handbook_baseline() if args.recipe == "baseline" else shipped_recipe()
    if args.train_days:
        recipe = dataclasses.replace(recipe, train_days=args.train_days)
    split = Split(parse_day(args.test_start), recipe.train_days, args.delay_days, args.test_days)
    with spark_session(settings, "fraud-train") as spark:
        metrics, artifact = train(spark, _dataset_or(args.data, settings), split, recipe, args.model_out,
                                  tuple(parse_day(week) for week in args.later_weeks))
    print(json.dumps({**metrics, **split.describe(), "recipe": args.recipe,
                      **({"model": artifact.version, "metrics_by_week": artifact.metadata["metrics"]}
                         if artifact else {})}))
    return 0


def _evaluate(args, settings) -> int:
    from fraud.spark import spark_session
    from training.protocol import Split, parse_day
    from training.train import evaluate

    split = Split(parse_day(args.test_start), 7, args.delay_days, args.test_days)
    with spark_session(settings, "fraud-evaluate") as spark:
        metrics = evaluate(spark, args.model, _dataset_or(args.data, settings), split)
    print(json.dumps({**metrics, "model": args.model, "test_start": split.test_start.isoformat(),
                      "test_days": split.test_days}))
    return 0


def _backfill(args, settings) -> int:
    from fraud.backfill import backfill
    from fraud.spark import spark_session

    with spark_session(settings, "fraud-backfill") as spark:
        report = backfill(spark, settings, args.input, args.model, tuple(args.sinks.split(",")), args.delay_days)
    print(json.dumps(report))
    return 0


def _stream(args, settings) -> int:
    from fraud.stream import stop_on_signals
    stop = stop_on_signals()  # first: a SIGTERM while Spark starts is a clean stop too

    from fraud.spark import launched_by_spark_submit, spark_session
    from fraud.stream.queries import DECISION, DELIVERED, DELIVERY, DeliveryProcess, run_stream

    parts = tuple(args.queries.split(","))
    delivery = None
    if parts == (DECISION, DELIVERY) and not launched_by_spark_submit() and set(args.sinks.split(",")) & set(DELIVERED):
        parts = (DECISION,)  # the delivery query runs beside, in its own process
        delivery = DeliveryProcess([*(["--config", args.config] if args.config else []), "stream", "--sinks",
                                    args.sinks, "--queries", DELIVERY], settings.stream.delivery_nice)
    app_name = "fraud-stream" if len(parts) > 1 else f"fraud-{parts[0]}"  # a cluster's application list shows it
    with spark_session(settings, app_name, ui=False,
                       extra_conf={"spark.ui.showConsoleProgress": "false"}) as spark:
        run_stream(spark, settings, tuple(args.sinks.split(",")), stop, args.model, parts, delivery)
    return 0


def _warm_start(args, settings) -> int:
    from fraud.spark import spark_session
    from fraud.stream.warm_start import warm_start

    with spark_session(settings, "fraud-warm-start") as spark:
        print(json.dumps(warm_start(spark, settings, args.input)))
    return 0


def _dashboard(args, settings) -> int:
    from fraud.dashboard import serve
    serve(settings, args.host, args.port)
    return 0


def _run(args, settings) -> int:
    from fraud.run import run_pipeline
    return run_pipeline(settings, args.rate, args.model)


def _produce(args, settings) -> int:
    from fraud.producer import Pace, labels_still_due, load_history, replay

    labels_due = None
    if args.simulate:
        from fraud.simulator import Simulator
        start = datetime.fromisoformat(args.start) if args.start else datetime(2026, 1, 1)
        history = Simulator(args.customers, args.terminals, seed=args.seed, start=start,
                            first_id=args.first_id).transactions()
    else:
        dataset = _dataset_or(args.input, settings)
        history = load_history(dataset, args.start)
        if args.start:  # a resumed replay also sends the labels the earlier one had not reached yet
            labels_due = labels_still_due(dataset, args.start, args.delay_days)
    summary = replay(settings, history, Pace(rate=args.rate, speedup=args.speedup), args.delay_days,
                     limit=args.limit, labels_due=labels_due)
    print(json.dumps(summary))
    return 0


def _data(args, settings) -> int:
    from fraud.data import TRANSACTIONS, fetch_dataset
    target = Path(args.target) if args.target else (settings.data_dir or Path("data/fdh"))
    if (target / TRANSACTIONS).exists() and not args.force:
        print(f"dataset already present in {target} (use --force to download again)")
        return 0
    fetch_dataset(target)
    print(f"dataset written to {target}; set FRAUD_DATA_DIR={target.resolve()} if it is not the default")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud", description="Real-time e-commerce fraud detection: local stack, "
                                                 "streaming scorer, producer, features, training, backfill.")
    parser.add_argument("--config", help="YAML configuration (default: $FRAUD_CONFIG or conf/local.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="start, stop or inspect the local Kafka / Elasticsearch / MariaDB stack",
                           description="Local services without Docker. Ports and state directory come from the "
                                       "configuration (FRAUD_KAFKA_PORT, FRAUD_ELASTICSEARCH_PORT, "
                                       "FRAUD_MYSQL_PORT, FRAUD_STATE_DIR override it).")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(func=_stack)

    init = sub.add_parser("init", help="create topics, MySQL tables and the Elasticsearch index (idempotent; "
                                      "`stack up` runs it, use it for the compose stack or your own services)")
    init.set_defaults(func=_init)

    package = sub.add_parser("package-code", help="zip the fraud, training and udfs packages for spark-submit "
                                                  "--py-files; prints the zip's path")
    package.add_argument("dest", nargs="?", default="dist", help="folder for fraud-code.zip (default dist)")
    package.set_defaults(func=_package_code)

    features = sub.add_parser("features", help="compute the handbook and extra features of a transaction history",
                              description="Reads Parquet, CSV or a Delta table with the handbook columns (or the "
                                          "Kafka message names) and writes Parquet: the input columns, the 14 "
                                          "handbook features under their handbook names, and the extras.")
    features.add_argument("--input", required=True, help="Parquet file/folder, CSV file/folder or Delta table")
    features.add_argument("--output", required=True, help="Parquet folder to write (replaced)")
    features.add_argument("--delay-days", type=int, default=7, help="label delay for terminal risk (default 7)")
    features.set_defaults(func=_features)

    train = sub.add_parser("train", help="train and evaluate a model on the handbook protocol",
                           description="Trains on the N days ending --delay-days before --test-start and tests on "
                                       "the handbook's test set (known-compromised cards removed). Prints one JSON "
                                       "line with auc, ap, cp100 (and, on the handbook's data, cp100_ceiling: the "
                                       "CP@100 of an oracle catching every card the delayed labels can reveal); "
                                       "with --model-out also writes the model, its metadata and a report.")
    train.add_argument("--data", help="transactions (default: the configured data_dir's transactions.parquet)")
    train.add_argument("--test-start", default="2018-08-08", help="first test day (default 2018-08-08)")
    train.add_argument("--train-days", type=int, help="training days (default: the recipe's; 56 shipped, 7 baseline)")
    train.add_argument("--delay-days", type=int, default=7, help="label delay between training and test (default 7)")
    train.add_argument("--test-days", type=int, default=7, help="test days (default 7)")
    train.add_argument("--recipe", choices=["shipped", "baseline"], default="shipped",
                       help="shipped: the product's model; baseline: the handbook's default random forest")
    train.add_argument("--model-out", help="folder to write the model to, e.g. models/NAME")
    train.add_argument("--later-weeks", nargs="*", default=[], metavar="DATE",
                       help="more test-week starts to measure the saved model on")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="measure a trained model on any test week (handbook protocol)",
                              description="Tests a trained model on the handbook's test set of any week. Prints one "
                                          "JSON line with auc, ap, cp100 (and cp100_ceiling on the handbook's data).")
    evaluate.add_argument("--model", required=True, help="model folder (e.g. models/default)")
    evaluate.add_argument("--data", help="transactions (default: the configured data_dir's transactions.parquet)")
    evaluate.add_argument("--test-start", required=True, help="first test day")
    evaluate.add_argument("--test-days", type=int, default=7, help="test days (default 7)")
    evaluate.add_argument("--delay-days", type=int, default=7, help="label delay (default 7)")
    evaluate.set_defaults(func=_evaluate)

    backfill = sub.add_parser("backfill", help="score a transaction history and write it to the sinks",
                              description="The stream's features and scoring over historical Parquet, CSV or "
                                          "Delta; one row per transaction in each sink, also on a rerun.")
    backfill.add_argument("--input", required=True, help="Parquet, CSV or Delta transaction history")
    backfill.add_argument("--model", default="models/default", help="model folder (default models/default)")
    backfill.add_argument("--sinks", default="delta,mysql,elasticsearch,kafka",
                          help="comma-separated subset of delta,mysql,elasticsearch,kafka (default: all)")
    backfill.add_argument("--delay-days", type=int, default=7, help="label delay for terminal risk (default 7)")
    backfill.set_defaults(func=_backfill)

    stream = sub.add_parser("stream", help="the streaming scorer: Kafka in; dead letters, archive and scored "
                                           "transactions out (runs until Ctrl-C)",
                            description="Reads transactions.raw and transactions.labels. Invalid records go to "
                                        "transactions.deadletter and MySQL dead_letters with their reason; valid "
                                        "ones are archived in Delta, scored with per-card and per-terminal state "
                                        "and written to transactions.scored, MySQL, Elasticsearch and Delta. "
                                        "Settings: the stream section of the configuration (FRAUD_STREAM_*).")
    stream.add_argument("--model", help="model folder, or a folder of them whose newest is served and "
                                        "hot-reloaded (default: stream.model, i.e. models/)")
    stream.add_argument("--sinks", default="delta,mysql,elasticsearch,kafka",
                        help="comma-separated subset of delta,mysql,elasticsearch,kafka (default: all)")
    stream.add_argument("--queries", default="decision,delivery",
                        help="decision (Kafka in, decisions out), delivery (MySQL, Elasticsearch, Delta), or both "
                             "(default: both; outside spark-submit the delivery query runs in a second, lower-priority "
                             "process)")
    stream.set_defaults(func=_stream)

    warm = sub.add_parser("warm-start", help="seed a new stream's card and terminal state from history",
                          description="Writes the card and terminal histories of the look-back before the newest "
                                      "transaction of a history into the stream's state (under "
                                      "stream.checkpoint_dir), so a new deployment scores its first transactions "
                                      "with full features. Only a state that has not run yet is seeded.")
    warm.add_argument("--input", help="Parquet / CSV / Delta history in the handbook's columns (default: the "
                                      "stream's own Delta archive, transactions_raw with its labels)")
    warm.set_defaults(func=_warm_start)

    dashboard = sub.add_parser("dashboard", help="the live web dashboard (reads Elasticsearch and MySQL)",
                               description="Serves the live dashboard: incoming transaction patterns, alerts "
                                           "(searchable), model performance as labels arrive, pipeline health. "
                                           "Settings: the dashboard section of the configuration "
                                           "(FRAUD_DASHBOARD_*).")
    dashboard.add_argument("--host", help="address to bind (default: dashboard.host, 127.0.0.1)")
    dashboard.add_argument("--port", type=int, help="port (default: dashboard.port, 8050)")
    dashboard.set_defaults(func=_dashboard)

    run = sub.add_parser("run", help="the whole pipeline on the local stack: stack up, stream, producer, live "
                                     "counts (what `make run` starts; Ctrl-C stops it)",
                         description="Starts the stack, the streaming scorer and a producer (the published dataset "
                                     "when the data directory has it, else the simulator), resuming after the last "
                                     "scored transaction, and prints counts every 10 s.")
    run.add_argument("--rate", type=float, default=500, help="producer events per second (default 500)")
    run.add_argument("--model", help="model folder or folder of them (default: stream.model, i.e. models/)")
    run.set_defaults(func=_run)

    produce = sub.add_parser("produce", help="replay transactions to Kafka in event-time order, labels after the delay",
                             description="Sends transactions to transactions.raw (JSON keyed by customer) and each "
                                         "label to transactions.labels once event time + the delay has passed.")
    source = produce.add_mutually_exclusive_group()
    source.add_argument("--input", help="Parquet or CSV history (default: the configured data_dir's dataset)")
    source.add_argument("--simulate", action="store_true",
                        help="an endless generated stream: the handbook's fraud scenarios plus card testing and "
                             "account takeover")
    produce.add_argument("--customers", type=int, default=5000, help="with --simulate (default 5000)")
    produce.add_argument("--terminals", type=int, default=10000, help="with --simulate (default 10000)")
    produce.add_argument("--seed", type=int, default=0, help="with --simulate (default 0)")
    pace = produce.add_mutually_exclusive_group(required=True)
    pace.add_argument("--rate", type=float, help="events per second (wall clock)")
    pace.add_argument("--speedup", type=float, help="event time runs this many times faster than real time")
    produce.add_argument("--limit", type=int, help="send at most N transactions")
    produce.add_argument("--start", help="first event time to send (e.g. 2018-08-01); with --simulate, the first "
                                         "simulated day (default 2026-01-01)")
    produce.add_argument("--first-id", type=int, default=0, help="with --simulate: first transaction id (default 0)")
    produce.add_argument("--delay-days", type=int, default=7, help="label delay (default 7)")
    produce.set_defaults(func=_produce)

    data = sub.add_parser("data", help="download the published handbook dataset (needs internet access)")
    data.add_argument("--target", help="folder to write to (default: the configured data_dir)")
    data.add_argument("--force", action="store_true", help="download even if present")
    data.set_defaults(func=_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C raises KeyboardInterrupt even when started in the background by a shell, which sets SIGINT to
    # "ignore" for its children (and `fraud run` stops its own children with SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("py4j", "mysql.connector", "elastic_transport"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
        return args.func(args, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # turn known operational failures into one readable line
        from fraud.data import DatasetMissing
        from fraud.io import InputError
        from fraud.jvm import MissingJarsError
        from fraud.stack.process import ServiceError
        if isinstance(exc, (ServiceError, MissingJarsError, DatasetMissing, InputError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
