"""Run plans: what a new run of an experiment would freeze, and a token that pins it.

`plan_token` (retab's `CreateExperimentRunRequest.plan_token`) lets a caller preview a
run and then create exactly that run: the token is a digest of the organisation, the
experiment, the block version, the execution fingerprint (type, config, n_consensus)
and the document set. Creating a run with a token that no longer matches (the block
was redefined, n_consensus or the documents changed) is refused with 409
`plan_changed`. Tokens do not expire: only a change of the plan makes one stale.
"""
from __future__ import annotations

from typing import Any

from projections.domain.state import BlockState, ExperimentState

from .. import fingerprints as fp
from .errors import ApiError


def plan_of(org_id: str, exp: ExperimentState, block: BlockState) -> dict[str, Any]:
    version = block.current
    doc_ids = [d["document_id"] for d in exp.documents]
    execution = fp.execution_fingerprint(version.block_type, dict(version.config), exp.n_consensus)
    documents = fp.documents_fingerprint(doc_ids)
    token = "plan_" + fp.digest([org_id, exp.experiment_id, version.version_id, execution, documents])[:32]
    return {
        "object": "experiment_run_plan", "plan_token": token, "experiment_id": exp.experiment_id,
        "workflow_id": exp.workflow_id, "block_id": exp.block_id, "block_type": version.block_type,
        "block_version_id": version.version_id, "block_version": version.version,
        "n_consensus": exp.n_consensus, "document_count": len(doc_ids),
        "block_execution_fingerprint": execution, "documents_fingerprint": documents,
    }


def check_token(given: str | None, plan: dict[str, Any]) -> None:
    if given is not None and given != plan["plan_token"]:
        raise ApiError(409, "plan_changed",
                       f"the plan token no longer matches experiment {plan['experiment_id']!r}: its block version "
                       "or document set changed since the plan was made; get a new plan "
                       "(POST /v1/workflows/experiments/runs/plan) and create the run again",
                       {"experiment_id": plan["experiment_id"], "block_version_id": plan["block_version_id"],
                        "documents_fingerprint": plan["documents_fingerprint"]})
