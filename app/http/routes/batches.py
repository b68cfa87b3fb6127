"""/api/v1/batches: many transfers in one request, atomic or each on its own, or a dry run (API.md §10)."""

from __future__ import annotations

from functools import partial
from http import HTTPStatus
from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.context import request_id, services, tenant_id
from app.http.endpoints import COMMON, links_to, operation, write
from app.http.io import dumps, query, send
from app.http.openapi import Operation
from app.http.problems import problem_body
from app.http.routes.payments import transfer_command
from app.http.schemas.batches import Batch, BatchRequest
from core.batches import MAX_TRANSFERS, BatchResult, limit_problems
from core.batches import Batch as StoredBatch
from core.errors import FieldError, ValidationFailed
from core.idempotency import StoredResponse
from core.usecases.batches import BatchTransfer, PostBatch, dry_run_batch, get_batch, post_batch
from core.views import batch_view

bp = Blueprint("batches", url_prefix="/api/v1")
#: API.md §10: this route takes bodies up to 1 MiB (a thousand transfers); the others keep the server's limit.
MAX_BODY = 1024 * 1024

#: The answer of a batch, and what is stored for `GET /batches/{id}`: a failing transfer shows its problem.
view = partial(batch_view, problem=problem_body)


def batch_command(request: Request, body: BatchRequest) -> PostBatch:
    """Every transfer checked as `POST /transfers` checks its body; every bad field reported at once, named
    by the transfer's index (`transfers[3].amount`)."""
    errors = limit_problems([transfer.reference for transfer in body.transfers])
    if len(body.transfers) > MAX_TRANSFERS:  # not worth checking each of them
        raise ValidationFailed(errors)
    legs = []
    for index, transfer in enumerate(body.transfers):
        try:
            legs.append(BatchTransfer(transfer=transfer_command(request, transfer), reference=transfer.reference))
        except ValidationFailed as error:
            errors += [FieldError(f"transfers[{index}].{e.field}", e.message) for e in error.errors]
    if errors:
        raise ValidationFailed(errors)
    return PostBatch(tenant_id=tenant_id(request), transfers=tuple(legs), atomic=body.atomic,
                     correlation_id=request_id(request))


def _status(result: BatchResult) -> HTTPStatus:
    return HTTPStatus.CREATED if result.atomic else HTTPStatus.OK


@operation(bp, Operation(method="post", path="/api/v1/batches",
                         summary="Make many transfers at once: atomic (201), each on its own (200), or a dry run (200)",
                         tag="batches", operation_id="createBatch",
                         links=links_to("batch_id", "getBatch"),
                         problems=("batch_failed",), request=BatchRequest, response=Batch,
                         response_status=201, also=(200,), idempotency="required", errors=(409, *COMMON),
                         max_body_size=MAX_BODY))
async def create(request: Request, body: BatchRequest) -> HTTPResponse:
    cmd, found = batch_command(request, body), services(request)
    if body.dry_run:  # a read: nothing is stored, not even the Idempotency-Key's record
        result = await dry_run_batch(cmd, uow_factory=found.uow_factory, clock=found.clock, view=view)
        return send(StoredResponse(status=200, body=dumps(view(result))))
    rendered: list[tuple[BatchResult, dict[str, Any]]] = []

    def answer(result: BatchResult) -> dict[str, Any]:
        """Rendered once (a payment view a transfer): the answer stored with the batch is the one sent. The
        result is kept with it, so a retried unit of work's new result is never taken for the old one."""
        if not rendered or rendered[-1][0] is not result:
            rendered.append((result, view(result)))
        return rendered[-1][1]

    return await write(request, lambda uow: post_batch(cmd, uow=uow, clock=found.clock, view=answer), answer,
                       status=_status, lock_accounts=cmd.locked_accounts)


@operation(bp, Operation(method="get", path="/api/v1/batches/{batch_id}", summary="Get a batch, as it was answered",
                         tag="batches", operation_id="getBatch",
                         problems=("not_found",), response=Batch, errors=(404, *COMMON)))
async def show(request: Request, batch_id: UUID) -> HTTPResponse:
    tenant = tenant_id(request)
    return await query(request, lambda uow: get_batch(tenant, batch_id, uow=uow), _stored)


def _stored(batch: StoredBatch) -> dict[str, Any]:
    return batch.view
