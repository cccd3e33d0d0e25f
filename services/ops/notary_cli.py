"""`runledger audit digest | export | check | public-key`: tamper evidence from the command
line (projections/notary; docs/security.md, "Tamper evidence"). `check` works offline: it
reads its files and nothing else (no server, no data directory, no database)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from ..settings import Settings
from .local import console, errors, fail, local_runtime, print_json


def add_parsers(commands) -> None:
    audit = commands.add_parser("audit", help="signed digests and offline proofs of the log's history").add_subparsers(
        dest="audit_command", required=True)

    digest = audit.add_parser("digest", help="the signed heads of every partition's Merkle tree: keep it")
    digest.add_argument("--out", default="-", help="file to write (default: stdout)")
    digest.add_argument("--since", metavar="DIGEST", type=Path,
                        help="an older digest: also carry the consistency proof from its sizes")
    digest.add_argument("--data-dir", type=Path)

    export = audit.add_parser("export", help="a run's records with an inclusion proof for each, to check offline")
    export.add_argument("run_id")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    export.add_argument("--since", metavar="DIGEST", type=Path,
                        help="an older digest: also carry the consistency proof from its sizes")
    export.add_argument("--data-dir", type=Path)

    check = audit.add_parser("check", help="verify a proof bundle or a digest offline (no server, no data dir)")
    check.add_argument("file", type=Path, help="a proof bundle (audit export) or a digest (audit digest)")
    check.add_argument("--digest", type=Path, help="an older digest: prove the log only grew since")
    check.add_argument("--public-key", metavar="KEY",
                       help="the ledger's public key (base64, as `audit public-key` prints it) or a file holding it")
    check.add_argument("--json", action="store_true")

    key = audit.add_parser("public-key", help="the public key digests are signed with (base64)")
    key.add_argument("--json", action="store_true")
    key.add_argument("--data-dir", type=Path)


def handle(settings: Settings, args: argparse.Namespace) -> int:
    if args.audit_command == "check":
        return _check(args)
    work = {"digest": _digest, "export": _export, "public-key": _public_key}[args.audit_command]
    return asyncio.run(work(settings, args))


async def _digest(settings: Settings, args) -> int:
    from projections.notary import proofs
    from projections.store.database import reader

    since = _since(args.since)
    async with local_runtime(settings) as runtime:
        key = await _signer(runtime)
        async with reader(runtime.engine).connect() as conn:
            try:
                document = await proofs.digest(conn, key, since)
            except proofs.SinceError as exc:
                return fail(str(exc), 1)
    _write(args.out, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    sizes = ", ".join(f"{h['partition']}:{h['size']}" for h in document["heads"])
    errors.print(f"digest of {len(document['heads'])} partition(s) (partition:size {sizes}) signed by key "
                 f"{document['key_id']}" + (f", consistent from {args.since}" if since else ""))
    return 0


async def _export(settings: Settings, args) -> int:
    from projections.notary import proofs
    from projections.store.database import reader
    from projections.store.tables import runs
    from sqlalchemy import select

    since = _since(args.since)
    async with local_runtime(settings) as runtime:
        key = await _signer(runtime)
        async with reader(runtime.engine).connect() as conn:
            org = await conn.scalar(select(runs.c.org_id).where(runs.c.run_id == args.run_id))
            if org is None:
                return fail(f"no run {args.run_id!r} in the read model")
            try:
                bundle = await proofs.run_bundle(conn, runtime.log, key, args.run_id, org, since)
            except (proofs.SinceError, proofs.RunNotNotarised) as exc:
                return fail(f"{type(exc).__name__}: {exc}", 1)
    body = orjson.dumps(bundle)
    _write(args.out, body)
    errors.print(f"run {args.run_id}: {len(bundle['records'])} records with their inclusion proofs "
                 f"({len(body):,} bytes), signed by key {bundle['key_id']}")
    return 0


def _check(args) -> int:
    from projections.notary.bundle import check
    from projections.notary.heads import BadDocument, parse_public_key

    try:
        document = _read_json(args.file)
        older = _read_json(args.digest) if args.digest else None
        key = parse_public_key(_key_text(args.public_key)) if args.public_key else None
    except (OSError, ValueError, BadDocument) as exc:
        return fail(str(exc))
    outcome = check(document, older, key)
    if args.json:
        print_json(outcome.as_json())
    else:
        for warning in outcome.warnings:
            errors.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        for line in outcome.proven:
            console.print(f"[green]ok[/green] {line}", soft_wrap=True)
        if outcome.ok:
            console.print(f"[green]verified[/green] {args.file}" + (f" against {args.digest}" if older else ""),
                          soft_wrap=True)
        else:
            console.print(f"[red]FAILED[/red] {outcome.failure}", soft_wrap=True)
    return 0 if outcome.ok else 1


async def _public_key(settings: Settings, args) -> int:
    from projections.notary.heads import b64

    from ..bootstrap import open_control_store
    from ..datadir import secure_data_dir
    from ..notary import key_location, signer
    from projections.store.database import make_engine

    secure_data_dir(settings)
    engine, control = make_engine(settings.read_model_url), None
    try:
        control = await open_control_store(settings, engine) if key_location(settings) == "control store" else None
        key = await signer(settings, control)
    finally:
        await engine.dispose()
        if control is not None and control is not engine:
            await control.dispose()
    if args.json:
        print_json({"algorithm": "ed25519", "key_id": key.key_id, "public_key": b64(key.public_key),
                    "location": key_location(settings)})
    else:
        print(b64(key.public_key))
    return 0


async def _signer(runtime):
    from ..notary import runtime_signer
    return await runtime_signer(runtime)


def _since(path: Path | None) -> dict[int, int]:
    if path is None:
        return {}
    document = _read_json(path)
    return {h["partition"]: h["size"] for h in document.get("heads", ())}


def _read_json(path: Path):
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def _key_text(value: str) -> str:
    path = Path(value)
    return path.read_text() if len(value) < 4096 and path.is_file() else value


def _write(out: str, body: bytes) -> None:
    if out == "-":
        sys.stdout.buffer.write(body + b"\n")
        sys.stdout.flush()
    else:
        Path(out).write_bytes(body + b"\n")
