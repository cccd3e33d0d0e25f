"""The notary's service side: which signing key this deployment uses, and the periodic
publication of signed heads on the log itself.

The key (projections/notary/keys.py): `RUNLEDGER_NOTARY_KEY_FILE` when set (a PEM Ed25519
private key the operator supplies, e.g. from a secrets manager); else `<data-dir>/notary.key`
where the control store is the data directory's (the embedded default), else the control
store's `notary_keys` row (PostgreSQL deployments). Made on first use, kept for ever.

The publisher runs beside a projector (`runledger serve`'s, `runledger project`'s): the one
holding the partition of the `notary` aggregate appends a `TreeHeadsPublished` event every
`RUNLEDGER_DIGEST_INTERVAL` seconds (default 3600; 0: never) if the log grew by anything
but its own digests meanwhile. So the log carries its own history of digests.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from events.catalogue import TreeHeadsPublished
from events.codec import encode
from events.envelope import new_event
from events.log import Message, Position, partition_for
from projections.notary import keys, proofs
from projections.notary.heads import Signer, b64
from projections.store.database import reader

from .settings import Settings

log = logging.getLogger("runledger.notary")

AGGREGATE = proofs.DIGEST_AGGREGATE  # the key of every TreeHeadsPublished event
ORG = "_notary"  # its organisation: no tenant's (organisation names start with a letter or digit)
PRODUCER = "runledger-notary"

_signers: dict[str, Signer] = {}


def key_location(settings: Settings) -> str:
    if settings.notary_key_file is not None:
        return f"file:{settings.notary_key_file}"
    if settings.control_url.startswith("sqlite"):
        return f"file:{settings.data_dir / 'notary.key'}"
    return "control store"


async def signer(settings: Settings, control) -> Signer:
    """This deployment's signer (made on first use), cached per process."""
    where = key_location(settings)
    if where not in _signers:
        if where.startswith("file:"):
            supplied = settings.notary_key_file is not None  # an operator's file is never made here
            _signers[where] = await asyncio.to_thread(keys.file_signer, Path(where[5:]), not supplied)
        else:
            _signers[where] = await keys.store_signer(control)
    return _signers[where]


async def runtime_signer(runtime) -> Signer:
    return await signer(runtime.settings, runtime.control or runtime.engine)


class Publisher:
    """Publishes the signed heads on the log every `interval` seconds, from the process whose
    projector holds the notary aggregate's partition, when the log grew since."""

    def __init__(self, runtime, interval: float):
        self.runtime, self.interval = runtime, interval
        self.partition = partition_for(AGGREGATE, runtime.log.partitions)
        self.published: dict[int, int] | None = None  # sizes at the last publication, with it counted

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish()
            except Exception as exc:  # noqa: BLE001 - the next period tries again; nothing depends on it
                log.warning("signed heads not published: %s: %s", type(exc).__name__, exc)

    async def publish(self, force: bool = False) -> Position | None:
        """Where the digest landed, or None when it was not this process's turn or nothing grew."""
        projector = self.runtime.projector
        if not force and (projector is None or self.partition not in projector.partitions):
            return None
        key = await runtime_signer(self.runtime)
        async with reader(self.runtime.engine).connect() as conn:
            heads, found = await proofs.signed_heads(conn, key)
        sizes = {p: tree.size for p, tree in found.items()}
        if not force and self._only_own_since(sizes):
            return None
        payload = TreeHeadsPublished(key_id=key.key_id, public_key=b64(key.public_key), heads=tuple(
            {k: v for k, v in h.as_json().items() if k != "time"} for h in heads))
        event = new_event(payload, aggregate_id=AGGREGATE, org_id=ORG, producer=PRODUCER)
        [position] = await self.runtime.log.append([Message(event.key, encode(event))])
        sizes[position.partition] = sizes.get(position.partition, 0) + 1  # its own record, once projected
        self.published = sizes
        log.info("published signed heads of %s partition(s) at %s", len(heads), position.token())
        return position

    def _only_own_since(self, sizes: dict[int, int]) -> bool:
        """Nothing but our last digest (projected or not yet) was appended since it."""
        last = self.published
        return last is not None and set(sizes) == set(last) and all(sizes[p] <= last[p] for p in sizes)


@contextlib.asynccontextmanager
async def publishing(runtime):
    """Beside a projector: the periodic publication, for as long as the block runs."""
    interval = runtime.settings.digest_interval
    await runtime_signer(runtime)  # the key is made on first start
    task = asyncio.create_task(Publisher(runtime, interval).run()) if runtime.projector and interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
