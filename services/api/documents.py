"""A request's documents as the events will freeze them, and the room they leave.

A document list travels in one event (ExperimentCreated, ExperimentUpdated, RunCreated),
bounded at `MAX_DOCUMENTS_BYTES` (768 KiB) as stored, so that with the rest of the
payload it stays one Kafka message. What the client sends is only part of that: each
stored document also holds its id, its file name and the keys around them. That part is
counted here, exactly, and a list that does not fit is a 422 that says both figures, in
the client's terms: its documents' content (`handle_inputs` and `provenance` as compact
JSON) and what runledger adds (docs/api.md, "Document lists").
"""
from __future__ import annotations

import orjson

from events.bounds import MAX_DOCUMENTS, MAX_DOCUMENTS_BYTES
from events.catalogue import DocumentSpec

from .. import fingerprints as fp
from .bodies import DocumentBody
from .errors import invalid

PER_DOCUMENT = len(b'{"document_id":"doc_012345678901234567890123","filename":,"handle_inputs":,"provenance":},')
"""What every stored document adds around its content and its file name (90 bytes)."""
NO_PROVENANCE = len(b"null")
"""...and `null` when it has no provenance."""


def document_specs(bodies: list[DocumentBody]) -> tuple[DocumentSpec, ...]:
    """The documents as an event freezes them; 422 for a duplicate, or a list with no room."""
    specs, seen = [], set()
    for i, body in enumerate(bodies):
        inputs = {name: handle.model_dump(mode="json") for name, handle in body.handle_inputs.items()}
        doc_id = fp.document_id(inputs)
        if doc_id in seen:
            raise invalid(f"documents[{i}] is a duplicate of an earlier document", index=i)
        seen.add(doc_id)
        files = [h["document"]["filename"] for h in inputs.values() if h["type"] == "file"]
        filename = files[0] if files else f"document-{i + 1}.json"
        specs.append(DocumentSpec(document_id=doc_id, filename=filename, handle_inputs=inputs,
                                  provenance=body.provenance))
    if len(specs) <= MAX_DOCUMENTS:  # more is refused by the catalogue, with its own message
        _check_room(specs)
    return tuple(specs)


def content_bytes(spec: DocumentSpec) -> int:
    """A document's content as the client gave it: its inputs and provenance, compact JSON."""
    provenance = len(orjson.dumps(spec.provenance)) if spec.provenance is not None else 0
    return len(orjson.dumps(spec.handle_inputs)) + provenance


def added_bytes(spec: DocumentSpec) -> int:
    """What runledger stores beside it: id, keys, the file name (again, for a file)."""
    return PER_DOCUMENT + len(orjson.dumps(spec.filename)) + (NO_PROVENANCE if spec.provenance is None else 0)


LIST = len(b"[]") - len(b",")
"""The list's own bytes: two brackets, one comma fewer than documents."""


def _check_room(specs: list[DocumentSpec]) -> None:
    content, added = sum(content_bytes(spec) for spec in specs), sum(added_bytes(spec) for spec in specs)
    allowed = MAX_DOCUMENTS_BYTES - LIST - added
    if content > allowed:
        raise invalid(f"documents: their handle_inputs and provenance are {content:,} bytes as compact JSON; "
                      f"{len(specs):,} documents leave room for {allowed:,} (runledger adds {added:,} bytes to "
                      f"them: each document's id, file name and keys, docs/api.md \"Document lists\"), within "
                      f"{MAX_DOCUMENTS_BYTES:,} bytes for the list as a run stores it",
                      content_bytes=content, room_bytes=allowed, added_bytes=added, limit_bytes=MAX_DOCUMENTS_BYTES,
                      documents=len(specs))
