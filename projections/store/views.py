"""Read queries over the read model. Route functions call these and shape the answer."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, NamedTuple

import orjson
from sqlalchemy import JSON, bindparam, case, cast, func, null, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from events import keys
from projections.domain.state import BlockState, DocumentState, ExperimentState, RunState
from projections.store import serialize as ser
from projections.store.pagination import Page, PageRequest, paginate
from projections.store.read_columns import (
    block_execution, experiment_card, experiment_freshness, filenames_of, render, run_resource, run_summary
)
from projections.store.tables import (
    blocks, checkpoints, dead_letters, document_targets, event_index, experiments, run_documents, runs
)


def _state_if_null(column, state):
    """A row written before a derived read column existed (read_columns.DERIVED) holds NULL
    there: select its state instead, to derive the value from."""
    return case((column.is_(None), state), else_=null()).label("state")


def _spec_if_null(*columns):
    """... and its spec (`runs.spec`, which the state leaves out), to derive it with: when
    any of `columns` is NULL."""
    return case((or_(*(column.is_(None) for column in columns)), runs.c.spec), else_=null()).label("spec")


_STATE_IF_NO_RESOURCE = (_state_if_null(runs.c.resource, runs.c.state),  # rows older than migration 0007
                         _spec_if_null(runs.c.resource))
_RUN_STATE = (runs.c.state, runs.c.spec)  # what `run_from_row` decodes a run from
SORTABLE = {"created_at": runs.c.created_at, "started_at": runs.c.started_at,
            "completed_at": runs.c.completed_at, "score": runs.c.score}
_EPOCH = datetime(1970, 1, 1)


def block_key(org_id: str, workflow_id: str, block_id: str) -> str:
    """Unambiguous for any ids (events.keys); the old `block:{org}:{workflow}:{block}` when that was."""
    return keys.block_key(org_id, workflow_id, block_id)


async def get_block(conn: AsyncConnection, org_id: str, workflow_id: str, block_id: str) -> BlockState | None:
    key = block_key(org_id, workflow_id, block_id)
    row = (await conn.execute(select(blocks.c.state).where(blocks.c.block_key == key))).first()
    return ser.block_from_json(row.state) if row else None


_BLOCK_EXECUTION = select(blocks.c.execution, _state_if_null(blocks.c.execution, blocks.c.state)).where(
    blocks.c.block_key == bindparam("key"))


async def get_block_execution(conn: AsyncConnection, org_id: str, workflow_id: str,
                              block_id: str) -> dict[str, Any] | None:
    """`read_columns.block_execution` of the block (None: no block, or no version yet)."""
    row = (await conn.execute(_BLOCK_EXECUTION, {"key": block_key(org_id, workflow_id, block_id)})).first()
    if row is None:
        return None
    if row.execution is None:  # written before migration 0008
        return block_execution(ser.block_from_json(row.state))
    return orjson.loads(row.execution)


async def get_experiment(conn: AsyncConnection, org_id: str, experiment_id: str) -> ExperimentState | None:
    query = select(experiments.c.state).where(
        experiments.c.experiment_id == experiment_id, experiments.c.org_id == org_id,
        experiments.c.deleted.is_(False),
    )
    row = (await conn.execute(query)).first()
    return ser.experiment_from_json(row.state) if row else None


class ExperimentFreshness(NamedTuple):
    """What a metrics summary reads of an experiment: `fields` is `read_columns.experiment_freshness`."""

    experiment_id: str
    workflow_id: str
    block_id: str
    fields: dict[str, Any]


_EXPERIMENT_FRESHNESS = select(
    experiments.c.workflow_id, experiments.c.block_id, experiments.c.freshness,
    _state_if_null(experiments.c.freshness, experiments.c.state),
).where(experiments.c.experiment_id == bindparam("experiment_id"), experiments.c.org_id == bindparam("org_id"),
        experiments.c.deleted.is_(False))


async def get_experiment_freshness(conn: AsyncConnection, org_id: str,
                                   experiment_id: str) -> ExperimentFreshness | None:
    """From the stored column; a row written before it (migration 0008) from its state."""
    row = (await conn.execute(_EXPERIMENT_FRESHNESS, {"experiment_id": experiment_id, "org_id": org_id})).first()
    if row is None:
        return None
    fields = (orjson.loads(row.freshness) if row.freshness is not None
              else experiment_freshness(ser.experiment_from_json(row.state)))
    return ExperimentFreshness(experiment_id, row.workflow_id, row.block_id, fields)


_CARD = (experiments.c.card, _state_if_null(experiments.c.card, experiments.c.state))


async def list_experiments(conn, org_id: str, workflow_id: str | None, block_id: str | None, page: PageRequest) -> Page:
    """Rows with the experiment's `card` (`read_columns.experiment_card`; `card_of(row)`),
    never its document list. `workflow_id` None: every workflow's (the console lists them all)."""
    query = select(experiments.c.experiment_id.label("id_"), *_CARD).where(
        experiments.c.org_id == org_id, experiments.c.deleted.is_(False),
    )
    if workflow_id is not None:
        query = query.where(experiments.c.workflow_id == workflow_id)
    if block_id:
        query = query.where(experiments.c.block_id == block_id)
    return await paginate(conn, query, experiments.c.created_at, experiments.c.experiment_id, page)


def card_of(row) -> dict[str, Any]:
    """The card of a `list_experiments` or `get_experiment_card` row (from its state when
    the row was written before the column, migration 0011)."""
    return orjson.loads(row.card) if row.card is not None else experiment_card(ser.experiment_from_json(row.state))


_EXPERIMENT_CARD = select(*_CARD).where(
    experiments.c.experiment_id == bindparam("experiment_id"), experiments.c.org_id == bindparam("org_id"),
    experiments.c.deleted.is_(False))


async def get_experiment_card(conn: AsyncConnection, org_id: str, experiment_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(_EXPERIMENT_CARD, {"experiment_id": experiment_id, "org_id": org_id})).first()
    return card_of(row) if row else None


_EXPERIMENT_DOCUMENTS = select(experiments.c.state["documents"]).where(
    experiments.c.experiment_id == bindparam("experiment_id"))


async def experiment_documents(conn: AsyncConnection, experiment_id: str) -> list[dict[str, Any]]:
    """The experiment's document list alone (the database extracts it from the state)."""
    return await conn.scalar(_EXPERIMENT_DOCUMENTS, {"experiment_id": experiment_id}) or []


class LatestRun(NamedTuple):
    """What an experiment's resource shows of its latest run (from the run's stored resource)."""

    run_id: str
    status: str
    block_execution_fingerprint: str
    documents_fingerprint: str


_LATEST = (select(runs.c.run_id, runs.c.status, runs.c.score, runs.c.resource, *_STATE_IF_NO_RESOURCE)
           .where(runs.c.org_id == bindparam("org_id"), runs.c.experiment_id == bindparam("experiment_id"))
           .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1))
_LATEST_SCORED = (select(runs.c.score).where(
    runs.c.org_id == bindparam("org_id"), runs.c.experiment_id == bindparam("experiment_id"),
    runs.c.status == "completed").order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1))


async def latest_runs(conn: AsyncConnection, org_id: str, experiment_id: str) -> tuple[LatestRun | None, float | None]:
    """The experiment's latest run, and the score of its latest completed one (None: none)."""
    params = {"org_id": org_id, "experiment_id": experiment_id}
    row = (await conn.execute(_LATEST, params)).first()
    if row is None:
        return None, None
    fields = orjson.loads(row.resource) if row.resource is not None else run_resource(run_from_row(row))
    last = LatestRun(row.run_id, row.status, fields["block_execution_fingerprint"], fields["documents_fingerprint"])
    if row.status == "completed":
        return last, row.score
    scored = (await conn.execute(_LATEST_SCORED, params)).first()
    return last, scored.score if scored else None


# Built once: coercing a subquery into IN costs more than the rest of a run read.
_LIVE_EXPERIMENTS = select(experiments.c.experiment_id).where(experiments.c.deleted.is_(False)).scalar_subquery()


def _visible_runs(org_id):
    return (runs.c.org_id == org_id) & runs.c.experiment_id.in_(_LIVE_EXPERIMENTS)


# Built once: the hottest read builds no statement and computes no cache key per request.
_RUN_RESOURCE = select(runs.c.resource, *_STATE_IF_NO_RESOURCE).where(
    runs.c.run_id == bindparam("run_id"), _visible_runs(bindparam("org_id")))


class RunSummary(NamedTuple):
    """A run as its metrics summary reads it: `fields` is `read_columns.run_summary` and,
    under "filenames", `read_columns.run_filenames`."""

    run_id: str
    experiment_id: str
    created_at: datetime
    fields: dict[str, Any]


_RUN_SUMMARY = select(
    runs.c.run_id, runs.c.experiment_id, runs.c.created_at, runs.c.summary, runs.c.filenames,
    _state_if_null(runs.c.summary, runs.c.state), _spec_if_null(runs.c.summary, runs.c.filenames),
).where(runs.c.run_id == bindparam("run_id"), _visible_runs(bindparam("org_id")))


async def get_run_summary(conn: AsyncConnection, org_id: str, run_id: str) -> RunSummary | None:
    """From the stored columns. A row written before `runs.summary` (migration 0008) is
    read from its state; one written before `runs.filenames` (0016) has them in its
    summary if that was written before 0016 too, else from its spec."""
    row = (await conn.execute(_RUN_SUMMARY, {"run_id": run_id, "org_id": org_id})).first()
    if row is None:
        return None
    fields = orjson.loads(row.summary) if row.summary is not None else run_summary(run_from_row(row))
    if row.filenames is not None:
        fields["filenames"] = orjson.loads(row.filenames)
    elif "filenames" not in fields:
        fields["filenames"] = filenames_of(row.spec if row.spec is not None else row.state["spec"])
    return RunSummary(row.run_id, row.experiment_id, row.created_at, fields)


async def get_run(conn: AsyncConnection, org_id: str, run_id: str) -> RunState | None:
    query = select(*_RUN_STATE).where(runs.c.run_id == run_id, _visible_runs(org_id))
    row = (await conn.execute(query)).first()
    return run_from_row(row) if row else None


async def latest_run(conn: AsyncConnection, org_id: str, experiment_id: str, status: str | None = None) -> RunState | None:
    query = select(*_RUN_STATE).where(runs.c.org_id == org_id, runs.c.experiment_id == experiment_id)
    if status:
        query = query.where(runs.c.status == status)
    row = (await conn.execute(query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1))).first()
    return run_from_row(row) if row else None


async def latest_run_id(conn: AsyncConnection, org_id: str, experiment_id: str) -> str | None:
    """`latest_run`'s id, without its state."""
    query = (select(runs.c.run_id).where(runs.c.org_id == org_id, runs.c.experiment_id == experiment_id)
             .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1))
    return await conn.scalar(query)


@dataclass(frozen=True)
class RunFilters:
    workflow_id: str | None = None
    experiment_id: str | None = None
    block_id: str | None = None
    status: str | None = None
    exclude_status: str | None = None
    trigger_type: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None
    sort_by: str = "created_at"


async def list_runs(conn: AsyncConnection, org_id: str, filters: RunFilters, page: PageRequest) -> Page:
    """Rows with the run's `state` (decode with `run_from_row`)."""
    return await _page_of_runs(conn, org_id, filters, page, *_RUN_STATE)


async def list_run_resources(conn: AsyncConnection, org_id: str, filters: RunFilters, page: PageRequest) -> Page:
    """Rows whose `resource_text` is the run's rendered resource: the state is decoded
    only for a row written before runs.resource existed."""
    return await _page_of_runs(conn, org_id, filters, page, runs.c.resource, *_STATE_IF_NO_RESOURCE)


def resource_text(row) -> str:
    """The run's resource as JSON text, from a `list_run_resources` or `get_run_resource` row."""
    return row.resource if row.resource is not None else render(run_resource(run_from_row(row)))


async def get_run_resource(conn: AsyncConnection, org_id: str, run_id: str) -> str | None:
    """The run's resource as JSON text (one indexed SELECT), or None when not the caller's."""
    row = (await conn.execute(_RUN_RESOURCE, {"run_id": run_id, "org_id": org_id})).first()
    return resource_text(row) if row else None


async def _page_of_runs(conn: AsyncConnection, org_id: str, filters: RunFilters, page: PageRequest,
                        *columns) -> Page:
    query = select(runs.c.run_id.label("id_"), *columns).where(_visible_runs(org_id))
    for name in ("workflow_id", "experiment_id", "block_id", "status", "trigger_type"):
        value = getattr(filters, name)
        if value is not None:
            query = query.where(runs.c[name] == value)
    if filters.exclude_status:
        query = query.where(runs.c.status != filters.exclude_status)
    if filters.from_date:
        query = query.where(runs.c.created_at >= filters.from_date)
    if filters.to_date:
        query = query.where(runs.c.created_at <= filters.to_date)
    column = SORTABLE[filters.sort_by]
    sort = func.coalesce(column, -1.0 if filters.sort_by == "score" else _EPOCH)
    return await paginate(conn, query, sort, runs.c.run_id, page)


async def list_results(conn: AsyncConnection, run_id: str, page: PageRequest) -> Page:
    """A page of the run's results: rows with `document_id`, no state (`result_documents`
    reads those of the rows a page holds)."""
    query = select(run_documents.c.result_id.label("id_"), run_documents.c.document_id).where(
        run_documents.c.run_id == run_id
    )
    return await paginate(conn, query, run_documents.c.idx, run_documents.c.result_id, page)


class PassSeen(NamedTuple):
    status: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ResultDocument:
    """What a result shows of a document (the attributes of `DocumentState` it reads),
    without the passes' outputs or the consensus beyond its value: a fifth of the state's
    bytes, taken out by the database's own JSON functions (`result_documents`)."""

    document_id: str
    filename: str
    handle_inputs: Mapping[str, Any]
    status: str
    attempt: int
    last_error: Mapping[str, Any] | None
    started_at: datetime | None
    completed_at: datetime | None
    score: float | None
    consensus: Mapping[str, Any] | None  # {"value": ...} when the document has a consensus
    passes: Mapping[int, PassSeen]


MAX_PASSES = 7  # the contract's largest n_consensus: a pass index is below it
_RESULT_PATHS = (("filename",), ("handle_inputs",), ("attempt",), ("last_error",), ("started_at",), ("completed_at",),
                 ("consensus", "value"),
                 *(("passes", str(i), name) for i in range(MAX_PASSES) for name in ("status", "attempt")))


def _result_query(dialect: str, run_id: str, document_ids: list[str]):
    """One row a document: its columns, an array of the `_RESULT_PATHS` values and whether it
    has a consensus. SQLite parses a state once for all the paths (its JSON cache);
    PostgreSQL converts it to jsonb once, in a subquery kept apart by `OFFSET 0`."""
    mine = (run_documents.c.run_id == run_id, run_documents.c.document_id.in_(document_ids))
    if dialect == "sqlite":
        quoted = ['$' + "".join(f'."{part}"' for part in path) for path in _RESULT_PATHS]
        state = run_documents.c.state
        return select(run_documents.c.document_id, run_documents.c.status, run_documents.c.score,
                      func.json_extract(state, *quoted, type_=JSON).label("values"),
                      func.json_type(state, "$.consensus").label("consensus")).where(*mine)
    inner = select(run_documents.c.document_id, run_documents.c.status, run_documents.c.score,
                   cast(run_documents.c.state, JSONB).label("s")).where(*mine).offset(0).subquery()
    return select(inner.c.document_id, inner.c.status, inner.c.score,
                  func.jsonb_build_array(*(inner.c.s[path] for path in _RESULT_PATHS), type_=JSON).label("values"),
                  func.jsonb_typeof(inner.c.s["consensus"]).label("consensus"))


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def result_documents(conn: AsyncConnection, run_id: str, document_ids: list[str]) -> dict[str, ResultDocument]:
    """The `ResultDocument`s of a run's documents (a page of results)."""
    found = {}
    for row in (await conn.execute(_result_query(conn.dialect.name, run_id, document_ids))).all():
        filename, inputs, attempt, error, started, completed, value, *passes = row.values
        found[row.document_id] = ResultDocument(
            row.document_id, filename, inputs, row.status, attempt, error, _moment(started), _moment(completed),
            row.score, {"value": value} if row.consensus == "object" else None,
            {i: PassSeen(passes[2 * i], passes[2 * i + 1]) for i in range(MAX_PASSES) if passes[2 * i] is not None})
    return found


async def pass_counts(conn: AsyncConnection, run_ids: list[str]) -> dict[str, int]:
    """Passes recorded per run (completed or failed), summed over its documents.
    Reads every document row of the given runs: the console asks for one page of runs."""
    query = select(run_documents.c.run_id, run_documents.c.state).where(run_documents.c.run_id.in_(run_ids))
    counts = dict.fromkeys(run_ids, 0)
    for row in (await conn.execute(query)).all():
        counts[row.run_id] += len(row.state.get("passes") or ())
    return counts


async def get_result(conn: AsyncConnection, org_id: str, result_id: str) -> tuple[str, DocumentState] | None:
    query = select(run_documents.c.run_id, run_documents.c.state).where(
        run_documents.c.result_id == result_id, run_documents.c.org_id == org_id
    )
    row = (await conn.execute(query)).first()
    return (row.run_id, ser.document_from_json(row.state)) if row else None


class DocumentScore(NamedTuple):
    """What a metrics summary shows of a document, from its row's columns (no state decoded)."""

    document_id: str
    filename: str
    status: str
    score: float | None


_DOCUMENT_SCORES = (select(run_documents.c.document_id, run_documents.c.status, run_documents.c.score)
                   .where(run_documents.c.run_id == bindparam("run_id")).order_by(run_documents.c.idx))


async def document_scores(conn: AsyncConnection, run_id: str,
                          filenames: Mapping[str, str] | None = None) -> list[DocumentScore]:
    """The run's documents in order, with their status and score (filenames "" unless given:
    a prior run's documents show their scores only)."""
    filenames = filenames or {}
    rows = (await conn.execute(_DOCUMENT_SCORES, {"run_id": run_id})).all()
    return [DocumentScore(document_id, filenames.get(document_id, ""), status, score)
            for document_id, status, score in rows]  # unpacked: a Row's attributes cost ~10x


async def scored_documents_page(conn: AsyncConnection, run_id: str, page: PageRequest) -> Page:
    """A page of the run's scored documents in document order (rows: `id_` the document
    id, `score`): the console's metrics page lists them a page at a time."""
    query = select(run_documents.c.document_id.label("id_"), run_documents.c.score).where(
        run_documents.c.run_id == run_id, run_documents.c.status == "completed")
    return await paginate(conn, query, run_documents.c.idx, run_documents.c.document_id, page)


async def scores_of(conn: AsyncConnection, run_id: str, document_ids: list[str]) -> list[DocumentScore]:
    """`document_scores` of these documents only."""
    query = select(run_documents.c.document_id, run_documents.c.status, run_documents.c.score).where(
        run_documents.c.run_id == run_id, run_documents.c.document_id.in_(document_ids))
    return [DocumentScore(d, "", status, score) for d, status, score in (await conn.execute(query)).all()]


async def run_documents_of(conn: AsyncConnection, run_id: str) -> list[DocumentState]:
    query = select(run_documents.c.state).where(run_documents.c.run_id == run_id).order_by(run_documents.c.idx)
    return [ser.document_from_json(row.state) for row in (await conn.execute(query)).all()]


async def run_events_until(conn: AsyncConnection, run_id: str, until_offset: int | None = None) -> list[Any]:
    """The run's indexed events in log order, up to an offset if given: `occurred_at`,
    `accepted` and `body` (NULL for a rejected event, which never changed the state).
    Reads the whole history: time travel on a run indexed before migration 0012 only (the
    bounded reads are in projections/store/history.py)."""
    query = select(event_index.c.occurred_at, event_index.c.accepted, event_index.c.body).where(
        event_index.c.aggregate_id == run_id)
    if until_offset is not None:
        query = query.where(event_index.c.offset <= until_offset)
    return list((await conn.execute(query.order_by(event_index.c.offset))).all())


async def target_rows(conn: AsyncConnection, run_id: str, document_id: str | None = None,
                      path: str | None = None) -> list[Any]:
    query = select(document_targets).where(document_targets.c.run_id == run_id)
    if document_id is not None:
        query = query.where(document_targets.c.document_id == document_id)
    if path is not None:
        query = query.where(document_targets.c.path == path)
    return list((await conn.execute(query.order_by(document_targets.c.document_id, document_targets.c.path))).all())


async def projection_checkpoints(conn: AsyncConnection) -> dict[str, dict[int, int]]:
    result: dict[str, dict[int, int]] = {}
    for name, partition, offset in (await conn.execute(select(checkpoints))).all():
        result.setdefault(name, {})[partition] = offset
    return result


async def dead_letter_counts(conn: AsyncConnection) -> dict[str, int]:
    query = select(dead_letters.c.projection, func.count()).group_by(dead_letters.c.projection)
    return {name: count for name, count in (await conn.execute(query)).all()}


def run_from_row(row) -> RunState:
    """A run from a row with its `state` and `spec` (NULL in a row written before migration
    0015 without it: its state holds its spec)."""
    return ser.run_from_json(row.state, {}, row._mapping.get("spec"))


async def get_run_any(conn: AsyncConnection, run_id: str) -> RunState | None:
    """A run by id, whatever its organisation (projector-side checks and tests)."""
    row = (await conn.execute(select(*_RUN_STATE).where(runs.c.run_id == run_id))).first()
    return run_from_row(row) if row else None


async def prior_completed_run(conn: AsyncConnection, org_id: str, run: RunState) -> RunState | None:
    """The latest completed run of the same experiment created before `run`."""
    query = _prior_completed(*_RUN_STATE).params(
        org_id=org_id, experiment_id=run.spec["experiment_id"], run_id=run.run_id, created_at=run.created_at)
    row = (await conn.execute(query)).first()
    return run_from_row(row) if row else None


class RunScore(NamedTuple):
    """What a metrics summary shows of the prior run (no state decoded)."""

    run_id: str
    score: float | None


def _prior_completed(*columns):
    return select(*columns).where(
        runs.c.org_id == bindparam("org_id"), runs.c.experiment_id == bindparam("experiment_id"),
        runs.c.status == "completed", runs.c.run_id != bindparam("run_id"),
        runs.c.created_at <= bindparam("created_at"),
    ).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1)


_PRIOR_SCORE = _prior_completed(runs.c.run_id, runs.c.score)
_RUN_SCORE = select(runs.c.run_id, runs.c.score).where(
    runs.c.run_id == bindparam("run_id"), _visible_runs(bindparam("org_id")))


async def prior_completed_score(conn: AsyncConnection, org_id: str, run: RunSummary) -> RunScore | None:
    """`prior_completed_run`'s id and score only."""
    params = {"org_id": org_id, "experiment_id": run.experiment_id, "run_id": run.run_id,
              "created_at": run.created_at}
    row = (await conn.execute(_PRIOR_SCORE, params)).first()
    return RunScore(*row) if row else None


async def get_run_score(conn: AsyncConnection, org_id: str, run_id: str) -> RunScore | None:
    """`get_run`'s id and score only."""
    row = (await conn.execute(_RUN_SCORE, {"run_id": run_id, "org_id": org_id})).first()
    return RunScore(*row) if row else None
