"""runledger's command line: a table of commands, each handled by its own module.

The description `runledger --help` shows is made from that table (`describe`), so it lists
every command there is."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import keys_cli, logs
from .ops import audit_cli, quarantine_cli, replay_cli, runs_cli
from .settings import Settings
from .worker import commands as worker_commands


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()  # text, or JSON lines with RUNLEDGER_LOG_FORMAT=json
    settings = Settings.from_env().with_(data_dir=getattr(args, "data_dir", None))
    return _run(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runledger")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API (and, on the embedded default, the projector)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--with-projector", action="store_true",
                       help="with Kafka configured, also run a projector in this process")
    serve.add_argument("--worker", metavar="MODULE:FUNCTION",
                       help="also run this block over new runs in this process, for every organisation "
                            "(e.g. services.worker.demo_block:demo_block); see docs/workers.md")
    serve.add_argument("--worker-concurrency", type=int, default=8, help="passes in flight at once (default 8)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N API processes on one port (SO_REUSEPORT); Kafka + PostgreSQL only, with the "
                            "projector in its own `runledger project` process (default 1)")
    serve.add_argument("--forwarded-allow-ips", metavar="IPS",
                       help="proxies trusted for X-Forwarded-Proto/For, comma-separated, '*' for any (default: "
                            "RUNLEDGER_FORWARDED_ALLOW_IPS, else 127.0.0.1); see docs/security.md")
    serve.add_argument("--sibling", action="store_true", help=argparse.SUPPRESS)  # started by --workers

    project = commands.add_parser("project", help="run a projector: one member of the projector consumer group")
    project.add_argument("--group", default="runledger-projector", help="consumer group (default: %(default)s)")
    project.add_argument("--data-dir", type=Path)
    project.add_argument("--health-port", type=int, help="also serve this process's /healthz and /metrics there")

    migrate = commands.add_parser("migrate", help="bring the read model's schema to the latest version")
    migrate.add_argument("--sql", action="store_true", help="print the DDL (PostgreSQL) instead of running it")
    migrate.add_argument("--data-dir", type=Path)

    keys_cli.add_parsers(commands)
    worker_commands.add_parsers(commands)
    replay_cli.add_parsers(commands)
    audit_cli.add_parsers(commands)
    quarantine_cli.add_parsers(commands)
    runs_cli.add_parsers(commands)
    parser.description = describe(commands)
    return parser


def describe(commands) -> str:
    """One line naming every command of the table, in its order."""
    return (f"runledger: {' | '.join(commands.choices)}. "
            "`runledger COMMAND --help` says what each takes.")


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "project":
        from .projector_process import run_projector
        asyncio.run(run_projector(settings, args.group, args.health_port))
        return 0
    if args.command == "migrate":
        return asyncio.run(_migrate(settings, args.sql))
    if args.command == "keys":
        return keys_cli.keys(settings, args)
    if args.command in replay_cli.HANDLED:
        return replay_cli.handle(settings, args)
    if args.command in audit_cli.HANDLED:
        return audit_cli.handle(settings, args)
    if args.command in quarantine_cli.HANDLED:
        return quarantine_cli.handle(settings, args)
    if args.command in runs_cli.HANDLED:
        return runs_cli.handle(settings, args)
    if args.command == "worker":
        return worker_commands.worker(settings, args)
    if args.command == "demo":
        return worker_commands.demo(settings, args)
    return 2


def _serve(settings: Settings, args) -> int:
    from .server import serve
    projector = settings.embedded or args.with_projector
    refused = workers_refused(settings, args.workers, args.with_projector)
    if refused:
        print(f"runledger serve: --workers {args.workers}: {refused}", file=sys.stderr)
        return 2
    if args.worker:
        from .worker.blocks import load_block
        try:
            load_block(args.worker)
        except (ValueError, ImportError, AttributeError) as exc:
            print(f"runledger serve: --worker {args.worker}: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve(settings.with_(host=args.host, port=args.port, projector=projector,
                                         forwarded_allow_ips=args.forwarded_allow_ips),
                          args.worker, args.worker_concurrency, args.workers, args.sibling))
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully on the first Ctrl-C
    return 0


def workers_refused(settings: Settings, workers: int, with_projector: bool) -> str | None:
    """Why `serve --workers N` cannot run here, or None. Several API processes need a log and a
    read model that several processes share, and the projector in a process of its own."""
    if workers < 1:
        return "needs at least 1"
    if workers == 1:
        return None
    if settings.embedded:
        return ("needs Kafka (RUNLEDGER_KAFKA_BOOTSTRAP): the embedded default runs the projector inside "
                "`serve` and its SQLite log takes one writing process; run one `serve` there")
    if not settings.database_url or settings.database_url.startswith("sqlite"):
        return ("needs a PostgreSQL read model (RUNLEDGER_DATABASE_URL): read-your-writes across processes "
                "wakes on PostgreSQL NOTIFY, and a SQLite read model takes one writing process")
    if with_projector:
        return ("cannot be combined with --with-projector: run the projector as `runledger project` "
                "(one per partition set), the API processes serve requests only")
    return None


async def _migrate(settings: Settings, sql_only: bool) -> int:
    from projections.store import migrate
    from projections.store.database import make_engine, prepare_schema

    url = settings.read_model_url
    if sql_only:
        if url.startswith("sqlite"):
            print("runledger migrate --sql: the embedded SQLite read model has no migrations", file=sys.stderr)
            return 2
        migrate.upgrade_sql(url)
        return 0
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        await prepare_schema(url, engine)
    finally:
        await engine.dispose()
    where = url.split("@")[-1]
    if url.startswith("sqlite"):
        print(f"read model {where}: schema created (embedded SQLite)")
    else:
        print(f"read model {where}: at revision {await migrate.current_revision(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
