"""Where the signing key lives, made on first use: a PEM file (mode 0600; the data
directory's `notary.key` on the embedded default, or a file the operator supplies), or
the control store's `notary_keys` row on PostgreSQL deployments. Not projected: a rebuild
signs with the same key. How to keep it: docs/security.md, "Tamper evidence"."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.notary.heads import Signer
from projections.store.control import notary_keys

KEY_NAME = "signing"


def file_signer(path: Path, create: bool = True) -> Signer:
    """The key in `path`; made there (0600, never overwritten) when missing and `create`."""
    try:
        return Signer.from_pem(path.read_bytes())
    except FileNotFoundError:
        if not create:
            raise
    signer = Signer.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return Signer.from_pem(path.read_bytes())
    with os.fdopen(fd, "wb") as out:
        out.write(signer.pem())
        out.flush()
        os.fsync(out.fileno())
    return signer


async def store_signer(control: AsyncEngine) -> Signer:
    """The key in the control store, made there when missing (replicas starting together
    agree: the first insert wins, the others read it)."""
    async with control.connect() as conn:
        pem = await conn.scalar(select(notary_keys.c.private_key).where(notary_keys.c.name == KEY_NAME))
    if pem is not None:
        return Signer.from_pem(pem.encode())
    signer = Signer.generate()
    try:
        async with control.begin() as conn:
            await conn.execute(insert(notary_keys).values(name=KEY_NAME, private_key=signer.pem().decode(),
                                                          created_at=datetime.now(timezone.utc)))
    except IntegrityError:
        return await store_signer(control)
    return signer
