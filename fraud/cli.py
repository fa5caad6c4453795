"""``fraud``: command line of the real-time fraud detection system.

Heavy imports (Spark, scikit-learn) happen inside the sub-commands, so
``fraud --help`` and ``fraud stack status`` answer at once.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fraud.config import ConfigError, load_settings

log = logging.getLogger("fraud")


def _stack(args, settings) -> int:
    from fraud.stack.manager import format_status, stack_down, stack_status, stack_up
    if args.action == "up":
        stack_up(settings)
    elif args.action == "down":
        stack_down(settings)
    rows = stack_status(settings)
    print(format_status(rows))
    return 0 if args.action == "down" or all(r.healthy for r in rows) else 1


def _init(args, settings) -> int:
    from fraud.stack.bootstrap import bootstrap
    print(json.dumps(bootstrap(settings)))
    return 0


def _roundtrip(args, settings) -> int:
    from fraud.roundtrip import smoke_roundtrip
    from fraud.spark import build_spark_session

    spark = build_spark_session(settings, "fraud-roundtrip")
    try:
        report = smoke_roundtrip(spark, settings, args.events, Path(args.work_dir or settings.state_dir / "roundtrip"))
    finally:
        spark.stop()
    print(json.dumps(report))
    return 0 if {report["mysql"], report["elasticsearch"], report["delta"]} == {report["produced"]} else 1


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
                                                 "data, smoke round trip (more commands arrive with the pipeline).")
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

    trip = sub.add_parser("roundtrip", help="smoke test: N events through Kafka and Spark into every sink")
    trip.add_argument("--events", type=int, default=1000, help="events to produce (default 1000)")
    trip.add_argument("--work-dir", help="where the Delta table goes (default <state_dir>/roundtrip)")
    trip.set_defaults(func=_roundtrip)

    data = sub.add_parser("data", help="download the published handbook dataset (needs internet access)")
    data.add_argument("--target", help="folder to write to (default: the configured data_dir)")
    data.add_argument("--force", action="store_true", help="download even if present")
    data.set_defaults(func=_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        from fraud.jvm import MissingJarsError
        from fraud.stack.process import ServiceError
        if isinstance(exc, (ServiceError, MissingJarsError, DatasetMissing)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
