"""`runledger keys create | list | revoke | rotate`: API keys in the control store.

A secret is printed once (create, rotate), on the last line of output, so scripts can
take `| tail -n1`; `list` never shows secrets. `--json` prints one JSON document.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from .settings import Settings


def add_parsers(commands) -> None:
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key for an organisation and print it (once)")
    create.add_argument("--org", required=True, help="organisation: 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric")
    create.add_argument("--name", help="a label, e.g. who or what uses the key")
    create.add_argument("--admin", action="store_true", help="admin role: may use the operations endpoints")
    listing = keys.add_parser("list", help="list keys: id, organisation, name, role, created, last used, revoked")
    listing.add_argument("--org", help="only this organisation's keys")
    revoke = keys.add_parser("revoke", help="revoke a key (every server refuses it within seconds)")
    revoke.add_argument("key", metavar="KEY_OR_ID")
    rotate = keys.add_parser("rotate", help="replace a key: a new secret, same organisation and role; the old "
                                            "one is revoked")
    rotate.add_argument("key", metavar="KEY_OR_ID")
    for sub in (create, listing, revoke, rotate):
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.add_argument("--data-dir", type=Path)


def keys(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(settings, args))
    except (ValueError, LookupError) as exc:
        print(f"runledger keys {args.keys_command}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from projections.store.database import make_engine, prepare_schema

    from . import keys as store
    from .bootstrap import open_control_store
    from .datadir import secure_data_dir

    secure_data_dir(settings)
    read_model = make_engine(settings.read_model_url)
    try:
        await prepare_schema(settings.read_model_url, read_model)  # PostgreSQL: migrations make the control tables
        control = await open_control_store(settings, read_model)
        try:
            return await _COMMANDS[args.keys_command](store, control, args)
        finally:
            await control.dispose()
    finally:
        await read_model.dispose()


async def _create(store, engine, args) -> int:
    secret, record = await store.create_key(engine, args.org, args.name, "admin" if args.admin else "tenant")
    _show(args, {**record.public(), "key": secret}, f"created {record.key_id} ({record.role}) for org "
                                                    f"{record.org_id}; the key (shown once):\n{secret}")
    return 0


async def _list(store, engine, args) -> int:
    records = await store.list_keys(engine, args.org)
    if args.json:
        print(json.dumps([r.public() for r in records], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "org", "name", "role", "created", "last used", "revoked")
    for r in records:
        table.add_row(r.key_id, r.org_id, r.name or "", r.role, _when(r.created_at), _when(r.last_used_at),
                      _when(r.revoked_at))
    Console(width=160).print(table)
    return 0


async def _revoke(store, engine, args) -> int:
    record = await store.revoke_key(engine, args.key)
    _show(args, record.public(), f"revoked {record.key_id} (org {record.org_id}) at {_when(record.revoked_at)}")
    return 0


async def _rotate(store, engine, args) -> int:
    secret, new, old = await store.rotate_key(engine, args.key)
    _show(args, {**new.public(), "key": secret, "replaces": old.key_id},
          f"revoked {old.key_id}; created {new.key_id} ({new.role}) for org {new.org_id}; the key (shown once):"
          f"\n{secret}")
    return 0


def _show(args, data: dict, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


_COMMANDS = {"create": _create, "list": _list, "revoke": _revoke, "rotate": _rotate}
