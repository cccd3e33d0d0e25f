"""Commands: check against the read model, append events, wait for the projection.

New ids come from the request's journal (`ctx.journal`, services/api/earned.py), so an
idempotent retry makes the same ones; appends go through `ctx.record`, given the states
the command read (`before`), so the answer is earned once the events are on the log."""
from __future__ import annotations

from events.catalogue import (
    BlockDefined, DocumentSpec, ExperimentCreated, ExperimentDeleted, ExperimentUpdated, RunCancelRequested, RunCreated
)
from events.codec import UndecodableEvent, build
from events.envelope import Event, new_event
from events.log import Position
from projections.domain.scoring import config_problem
from projections.domain.state import RUN_TERMINAL, BlockState, ExperimentState
from projections.store import views

from .. import fingerprints as fp
from .bodies import CreateExperimentBody, CreateRunBody, DefineBlockBody, UpdateExperimentBody
from .context import Ctx, require
from .documents import document_specs
from .errors import ApiError, invalid, not_found
from .plan import check_token, plan_of


def _event(ctx: Ctx, payload, aggregate_id: str) -> Event:
    """A fact with a natural identity keeps it; any other takes its id from the journal."""
    event_id = None if payload.natural_key(aggregate_id) else ctx.journal.event_id()
    return new_event(payload, aggregate_id=aggregate_id, org_id=ctx.org_id, producer=ctx.producer, event_id=event_id)


async def define_block(ctx: Ctx, workflow_id: str, block_id: str, body: DefineBlockBody) -> tuple[dict, list[Position]]:
    problem = config_problem(body.config)
    if problem:
        raise invalid(f"block config: {problem}", field="config")
    fingerprint = fp.block_fingerprint(body.type, body.config)
    async with ctx.connect() as conn:
        current = await views.get_block(conn, ctx.org_id, workflow_id, block_id)
    positions: list[Position] = []
    if current is None or current.current.fingerprint != fingerprint:
        version_id = fp.block_version_id(workflow_id, block_id, fingerprint)
        payload = BlockDefined(workflow_id=workflow_id, block_id=block_id, block_type=body.type,
                               config=body.config, fingerprint=fingerprint, version_id=version_id)
        key = views.block_key(ctx.org_id, workflow_id, block_id)
        positions = await ctx.record([_event(ctx, payload, key)], {key: current})
        async with ctx.connect() as conn:
            current = await views.get_block(conn, ctx.org_id, workflow_id, block_id)
    version = current.current
    return {
        "workflow_id": workflow_id, "block_id": block_id, "type": version.block_type,
        "config": version.config, "version": version.version, "version_id": version.version_id,
        "fingerprint": version.fingerprint, "created": bool(positions),
    }, positions


def _no_captures(captures) -> None:
    if captures:
        raise invalid("document_captures need workflow execution provenance, which runledger does not "
                      "hold; send the documents themselves in `documents`")


async def _require_block(ctx: Ctx, conn, workflow_id: str, block_id: str):
    block = await views.get_block(conn, ctx.org_id, workflow_id, block_id)
    if block is None:
        raise ApiError(404, "block_not_found",
                       f"block {block_id!r} of workflow {workflow_id!r} is not defined; define it first with "
                       f"PUT /v1/workflows/{workflow_id}/blocks/{block_id}",
                       {"workflow_id": workflow_id, "block_id": block_id})
    return block


async def create_experiment(ctx: Ctx, body: CreateExperimentBody) -> tuple[str, list[Position]]:
    if body.source_experiment_id:
        return await _duplicate_experiment(ctx, body)
    if not body.block_id:
        raise invalid("block_id is required (or source_experiment_id to duplicate an experiment)")
    _no_captures(body.document_captures)
    async with ctx.connect() as conn:
        await _require_block(ctx, conn, body.workflow_id, body.block_id)
    experiment_id = ctx.journal.new_id("exp")
    payload = ExperimentCreated(
        workflow_id=body.workflow_id, block_id=body.block_id, name=body.name or "Untitled experiment",
        n_consensus=body.n_consensus or 3, documents=document_specs(body.documents or []),
    )
    return experiment_id, await ctx.record([_event(ctx, payload, experiment_id)], {experiment_id: None})


async def _duplicate_experiment(ctx: Ctx, body: CreateExperimentBody) -> tuple[str, list[Position]]:
    others = [name for name in ("block_id", "document_captures", "documents", "n_consensus", "name")
              if getattr(body, name) is not None]
    if others:
        raise invalid("source_experiment_id duplicates an experiment; omit " + ", ".join(others), fields=others)
    async with ctx.connect() as conn:
        source = await views.get_experiment(conn, ctx.org_id, body.source_experiment_id)
    if source is None or source.workflow_id != body.workflow_id:
        raise not_found("experiment", body.source_experiment_id)
    experiment_id = ctx.journal.new_id("exp")
    payload = ExperimentCreated(
        workflow_id=source.workflow_id, block_id=source.block_id, name=f"{source.name} (Copy)",
        n_consensus=source.n_consensus, documents=tuple(DocumentSpec(**d) for d in source.documents),
        source_experiment_id=source.experiment_id,
    )
    return experiment_id, await ctx.record([_event(ctx, payload, experiment_id)], {experiment_id: None})


async def load_experiment(ctx: Ctx, experiment_id: str) -> ExperimentState:
    return await require(ctx, views.get_experiment, "experiment", experiment_id)


async def update_experiment(ctx: Ctx, experiment_id: str, body: UpdateExperimentBody) -> list[Position]:
    current = await load_experiment(ctx, experiment_id)
    _no_captures(body.document_captures)
    documents = document_specs(body.documents) if body.documents is not None else None
    payload = ExperimentUpdated(name=body.name, n_consensus=body.n_consensus, documents=documents)
    return await ctx.record([_event(ctx, payload, experiment_id)], {experiment_id: current})


async def delete_experiment(ctx: Ctx, experiment_id: str) -> list[Position]:
    current = await load_experiment(ctx, experiment_id)
    async with ctx.connect() as conn:
        last = await views.latest_run(conn, ctx.org_id, experiment_id)
    if last is not None and last.status not in RUN_TERMINAL:
        raise ApiError(409, "run_in_progress",
                       f"run {last.run_id!r} is {last.status}; cancel it before deleting the experiment",
                       {"run_id": last.run_id})
    return await ctx.record([_event(ctx, ExperimentDeleted(), experiment_id)], {experiment_id: current})


async def _run_plan(ctx: Ctx, body: CreateRunBody) -> tuple[ExperimentState, BlockState, dict]:
    exp = await load_experiment(ctx, body.experiment_id)
    if body.workflow_id is not None and body.workflow_id != exp.workflow_id:
        raise ApiError(404, "experiment_not_found",
                       f"experiment {exp.experiment_id!r} does not belong to workflow {body.workflow_id!r}",
                       {"experiment_id": exp.experiment_id, "workflow_id": body.workflow_id})
    if not exp.documents:
        raise ApiError(409, "no_documents", "the experiment has no documents; add some before running it")
    async with ctx.connect() as conn:
        block = await _require_block(ctx, conn, exp.workflow_id, exp.block_id)
    return exp, block, plan_of(ctx.org_id, exp, block)


async def plan_run(ctx: Ctx, body: CreateRunBody) -> dict:
    """What `create_run` would freeze now, with the token that pins it."""
    return (await _run_plan(ctx, body))[2]


async def create_run(ctx: Ctx, body: CreateRunBody, trigger_type: str = "api") -> tuple[str, list[Position]]:
    """Appends `RunCreated` only: the run is `pending` until a worker (or producer)
    takes it with `RunQueued` (docs/workers.md)."""
    exp, block, plan = await _run_plan(ctx, body)
    check_token(body.plan_token, plan)
    async with ctx.connect() as conn:
        parent = await views.latest_run(conn, ctx.org_id, exp.experiment_id)
    run_id = ctx.journal.new_id("run")
    version = block.current
    payload = RunCreated(
        experiment_id=exp.experiment_id, workflow_id=exp.workflow_id,
        workflow_version_id="wfv_" + fp.digest([exp.workflow_id, version.version_id])[:24],
        block_id=exp.block_id, block_type=version.block_type, block_version_id=version.version_id,
        block_config=dict(version.config), n_consensus=exp.n_consensus,
        documents=tuple(DocumentSpec(**d) for d in exp.documents),
        block_execution_fingerprint=plan["block_execution_fingerprint"],
        documents_fingerprint=plan["documents_fingerprint"],
        trigger_type=body.trigger_type or trigger_type, parent_run_id=parent.run_id if parent else None,
    )
    return run_id, await ctx.record([_event(ctx, payload, run_id)], {run_id: None})


async def cancel_run(ctx: Ctx, run_id: str, reason: str | None) -> list[Position]:
    """Idempotent for a cancelled run; 404 for an unknown or finished one (as the retab
    SDK documents), the message saying which."""
    async with ctx.connect() as conn:
        run = await views.get_run(conn, ctx.org_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    if run.status in ("completed", "error"):
        raise ApiError(404, "run_not_cancellable",
                       f"run is {run.status}; only pending, queued or running runs can be cancelled",
                       {"id": run_id, "status": run.status})
    if run.status == "cancelled":
        return []
    payload = RunCancelRequested(reason=reason or "cancelled by user", requested_by=ctx.org_id)
    return await ctx.record([_event(ctx, payload, run_id)], {run_id: run})


def ingest_event(ctx: Ctx, raw: dict, index: int, trace: str | None = None) -> Event:
    """One item of an ingestion body (services/api/ingest_body.py: its shape checked, every
    IngestEvent field present), validated by the codec alone. `trace`: the request's
    traceparent, for an event that names none (a malformed own one is a 422)."""
    try:
        return build(raw["type"], raw["run_id"], raw["payload"], org_id=ctx.org_id, producer=f"http:{ctx.org_id}",
                     occurred_at=raw["occurred_at"], event_id=raw["event_id"], schema_version=raw["schema_version"],
                     trace=raw["trace"] if raw["trace"] is not None else trace)
    except UndecodableEvent as exc:
        raise invalid(f"events[{index}]: {exc}", index=index) from None
