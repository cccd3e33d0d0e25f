"""The API's cache of rendered reads (services/api/read_cache.py): a cached answer is the
route's own bytes; authorisation is checked on every hit; a write is forgotten as soon as
it is announced (in this process after its commit; on PostgreSQL through NOTIFY from any
process); a lost listener makes the cache forget everything and step aside until it
listens again; what nobody announces is at most the cache's TTL old; and a position
token is always honoured."""
from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from sqlalchemy import func, select, update

from projections.runtime import changes
from projections.store.tables import runs
from services.api.app import create_app
from services.api.auth import KEY_CACHE_TTL
from services.api.context import Ctx
from services.api.read_cache import CachedReads
from services.keys import revoke_key, store_key
from services.ledger import Ledger
from tests.builders import RunScript
from tests.integration.test_read_your_writes import KEY, experiment, projecting, runtime  # noqa: F401 (fixtures)

RUNS = "/v1/workflows/experiments/runs"
METRICS = "/v1/workflows/experiments/metrics"
OTHER_KEY = "rl_test_read_cache_org_b"


@contextlib.asynccontextmanager
async def serving(runtime, cache: bool = True):
    """The app with its read cache started, as a server starts it, and trusted: listening
    (PostgreSQL), or with the running projector holding every partition (SQLite)."""
    app = create_app(runtime)
    app.state.read_cache.enabled = cache
    await app.state.read_cache.start()
    deadline = asyncio.get_running_loop().time() + 30
    while cache and not app.state.read_cache.trusted():
        assert asyncio.get_running_loop().time() < deadline, "the read cache never trusted its answers"
        await asyncio.sleep(0.01)
    try:
        yield app
    finally:
        await app.state.read_cache.close()


@contextlib.asynccontextmanager
async def client(app, key: str = KEY):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runledger", headers={"Api-Key": key}) as c:
        yield c


async def echoes_heard(app, runtime) -> None:
    """Once the app's listener (PostgreSQL) has heard every change committed so far. A write
    is forgotten in this process at its commit, and again when its notification comes back
    over the listener, which also forgets what was read in between: a test counting cache
    hits waits for those echoes first. Notifications arrive in commit order, so a marker
    sent now comes after every one of them."""
    cache = app.state.read_cache
    if cache.listener is None:
        return  # SQLite: told in this process only, at the commit
    marker, told, arrived = ("run_marker", "org_marker", ""), cache.changed, asyncio.Event()

    def changed(what: changes.Changed | None) -> None:
        told(what)
        if what is not None and marker in what.runs:
            arrived.set()

    cache.changed = changed
    try:
        payload = changes.Changed(runs=(marker,), orgs=frozenset({"org_marker"})).payloads()[0]
        async with runtime.engine.begin() as conn:
            await conn.execute(select(func.pg_notify(changes.CHANNEL, func.concat(func.current_schema(), "\n" + payload))))
        await asyncio.wait_for(arrived.wait(), 30)
    finally:
        del cache.changed


def hits(app) -> int:
    layer = app.middleware_stack
    while not isinstance(layer, CachedReads):
        layer = layer.app
    return layer.served


def answer(response: httpx.Response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k != "x-request-id")
    return response.status_code, response.content, headers


READS = [f"{RUNS}/run_cache_b", RUNS, f"{METRICS}?run_id=run_cache_b", f"{METRICS}?run_id=run_cache_a"]


async def test_a_cached_answer_is_the_routes_answer_byte_for_byte(runtime):
    async with projecting(runtime), serving(runtime) as app, serving(runtime, cache=False) as plain:
        await completed(runtime, "run_cache_a", "run_cache_b")
        await echoes_heard(app, runtime)
        async with client(app) as cached, client(plain) as route:
            for path in READS:
                first, second, expected = await cached.get(path), await cached.get(path), await route.get(path)
                assert first.status_code == 200, (path, first.text)
                assert answer(first) == answer(second) == answer(expected), path
                assert second.headers["x-request-id"] != first.headers["x-request-id"]  # the outer layers still run
            assert hits(app) == len(READS) and hits(plain) == 0
            assert answer(await cached.get(RUNS + "/run_missing")) == answer(await route.get(RUNS + "/run_missing"))
    counted = app.state.telemetry.requests  # the runtime's registry: both apps count into it
    assert counted.labels("GET", RUNS + "/{run_id}", "200")._value.get() == 3  # the hit under its route too
    assert counted.labels("GET", METRICS, "200")._value.get() == 6


async def test_requests_for_an_answer_being_read_wait_for_it_instead_of_reading_too(runtime):
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        await completed(runtime, "run_cache_c")
        await echoes_heard(app, runtime)
        await api.get(RUNS + "/run_missing")  # the key, looked up once
        answers = await asyncio.gather(*(api.get(f"{RUNS}/run_cache_c") for _ in range(5)))
        assert len({answer.content for answer in answers}) == 1 and answers[0].status_code == 200
        assert hits(app) == 4  # one read by the route, four given its answer


async def test_another_organisation_or_a_revoked_key_never_meets_a_cached_answer(runtime):
    await store_key(runtime.control, OTHER_KEY, "org_b")
    secret = "rl_test_read_cache_revoked"
    await store_key(runtime.control, secret, "org_a")
    async with projecting(runtime), serving(runtime) as app, client(app, secret) as mine, \
            client(app, OTHER_KEY) as theirs:
        await completed(runtime, "run_cache_org")
        for path in (f"{RUNS}/run_cache_org", RUNS, f"{METRICS}?run_id=run_cache_org"):
            assert (await mine.get(path)).status_code == 200
        served = hits(app)
        assert (await theirs.get(f"{RUNS}/run_cache_org")).status_code == 404
        assert (await theirs.get(f"{METRICS}?run_id=run_cache_org")).status_code == 404
        assert (await theirs.get(RUNS)).json()["data"] == []
        assert hits(app) == served  # none of it from the cache
        await revoke_key(runtime.control, secret)
        deadline = asyncio.get_running_loop().time() + KEY_CACHE_TTL + 5
        while (await mine.get(f"{RUNS}/run_cache_org")).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, "a revoked key was still answered"
            await asyncio.sleep(0.05)
        refused = await mine.get(RUNS)
        assert refused.status_code == 401 and refused.json()["detail"]["message"] == "this API key has been revoked"


async def project(runtime, events) -> list:
    """Append and wait until the (running) projector has applied them."""
    ledger = Ledger(runtime)
    positions = await ledger.append(events)
    await ledger.settle(positions, 30)
    return positions


async def completed(runtime, *run_ids: str) -> None:
    """Each run: two documents, three passes each (completed, scored)."""
    events = [experiment("exp_1")]
    for run_id in run_ids:
        script = RunScript(run_id=run_id, docs=2, n=3)
        events += [script.created(), script.queued(), *script.all_passes()]
    await project(runtime, events)


async def half_done(runtime, run_id: str) -> RunScript:
    """A run with one of its two documents done (three passes); `rest` finishes it."""
    script = RunScript(run_id=run_id, docs=2, n=3)
    await project(runtime, [experiment("exp_1"), script.created(), script.queued(),
                            *(script.passed("doc_0", p) for p in range(3))])
    script.rest = [script.passed("doc_1", p) for p in range(3)]
    return script


async def test_a_write_in_this_process_is_seen_by_the_next_read(runtime):
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        script = await half_done(runtime, "run_cache_w")
        await echoes_heard(app, runtime)
        path, summary_path = f"{RUNS}/run_cache_w", f"{METRICS}?run_id=run_cache_w"
        before, summary = (await api.get(path)).json(), (await api.get(summary_path)).json()
        assert (await api.get(path)).json() == before and (await api.get(summary_path)).json() == summary
        assert hits(app) == 2 and before["completed_document_count"] == 1
        await project(runtime, script.rest)
        after = (await api.get(path)).json()  # no token: the cache forgot the run at the commit
        assert after["completed_document_count"] == 2 and after["lifecycle"]["status"] == "completed"
        assert (await api.get(summary_path)).status_code == 200
        assert [r["completed_document_count"] for r in (await api.get(RUNS)).json()["data"]] == [2]
        assert hits(app) == 2  # the run and its summary were read afresh


async def test_a_position_token_is_never_answered_older_than_it(runtime):
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        script = await half_done(runtime, "run_cache_t")
        await echoes_heard(app, runtime)
        for _ in range(2):
            assert (await api.get(f"{RUNS}/run_cache_t")).json()["completed_document_count"] == 1
        assert hits(app) == 1
        changes._feed.subscribers.discard(app.state.read_cache)  # deaf: no word of the write reaches the cache
        token = (await Ledger(runtime).append(script.rest))[-1].token()
        answered = await api.get(f"{RUNS}/run_cache_t", headers={"x-runledger-position": token})
        assert answered.json()["completed_document_count"] == 2
        assert (await api.get(f"{RUNS}/run_cache_t", params={"position": token})).json() == answered.json()
        assert hits(app) == 1  # both went to the route
        if runtime.engine.dialect.name == "sqlite":  # without the token, the deaf cache's answer (TTL-bound)
            assert (await api.get(f"{RUNS}/run_cache_t")).json()["completed_document_count"] == 1


async def test_a_commands_answer_is_followed_by_fresh_reads_in_its_process(runtime):
    """Whichever process projected the command's events, once its answer is given this
    process's cache has forgotten the organisation (services/api/context.Ctx.record)."""
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        await completed(runtime, "run_cache_cmd")
        for _ in range(2):
            await api.get(f"{RUNS}/run_cache_cmd")
        assert len(app.state.read_cache.answers) == 1
        heard = []
        original, app.state.read_cache.changed = app.state.read_cache.changed, heard.append  # deaf to projectors
        await Ctx("org_a", runtime, Ledger(runtime)).record([experiment("exp_cmd")])
        assert heard[-1] == changes.Changed.everything_of({"org_a"})
        app.state.read_cache.changed = original
        original(heard[-1])
        assert len(app.state.read_cache.answers) == 0


async def test_what_nobody_announces_is_at_most_the_ttl_old(runtime):
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        await completed(runtime, "run_cache_ttl")
        now = [1000.0]
        answers = app.state.read_cache.answers
        answers.clock = lambda: now[0]
        original = (await api.get(f"{RUNS}/run_cache_ttl")).content
        async with runtime.engine.begin() as conn:  # a writer that announces nothing
            await conn.execute(update(runs).where(runs.c.run_id == "run_cache_ttl")
                               .values(resource=func.replace(runs.c.resource, '"score"', '"score" ')))
        now[0] += answers.ttl
        assert (await api.get(f"{RUNS}/run_cache_ttl")).content == original  # within the TTL: the cached answer
        now[0] += 0.01
        assert (await api.get(f"{RUNS}/run_cache_ttl")).content != original  # past it: read again


# -- PostgreSQL: announcements from any process, and a lost listener ------------------------

def postgres_only(runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


async def test_another_processes_write_is_heard_through_notify(runtime):
    postgres_only(runtime)
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        script = await half_done(runtime, "run_cache_n")
        cache = app.state.read_cache
        changes._feed.subscribers.discard(cache)  # as in another process: only NOTIFY reaches this cache
        assert (await api.get(f"{RUNS}/run_cache_n")).json()["completed_document_count"] == 1
        heard, told = asyncio.Event(), cache.changed

        def changed(what):
            told(what)
            if what is not None and any(run == "run_cache_n" for run, _, _ in what.runs):
                heard.set()

        cache.changed = changed  # what the listener calls
        await project(runtime, script.rest)
        await asyncio.wait_for(heard.wait(), 30)
        assert (await api.get(f"{RUNS}/run_cache_n")).json()["completed_document_count"] == 2
        assert hits(app) == 0


async def test_a_lost_listener_forgets_everything_and_steps_aside_until_it_listens_again(runtime):
    postgres_only(runtime)
    async with projecting(runtime), serving(runtime) as app, client(app) as api:
        script = await half_done(runtime, "run_cache_l")
        await echoes_heard(app, runtime)
        cache = app.state.read_cache
        changes._feed.subscribers.discard(cache)
        for _ in range(2):
            await api.get(f"{RUNS}/run_cache_l")
        assert hits(app) == 1 and len(cache.answers) == 1
        pid = cache.listener._driver.get_server_pid()
        async with runtime.base_engine.connect() as conn:
            assert await conn.scalar(select(func.pg_terminate_backend(pid)))
        deadline = asyncio.get_running_loop().time() + 30
        while not cache.listener.lost:  # it may listen again at once: the count is what stays
            assert asyncio.get_running_loop().time() < deadline, "the lost connection went unnoticed"
            await asyncio.sleep(0.01)
        assert not cache.answers  # everything forgotten when the connection went
        await project(runtime, script.rest)  # announced while nobody listened
        assert await cache.listener.wait_listening(30)
        assert (await api.get(f"{RUNS}/run_cache_l")).json()["completed_document_count"] == 2
        assert hits(app) == 1  # read afresh after the reconnection, not from before it
