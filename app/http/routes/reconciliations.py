"""/api/v1/reconciliations: a provider's settlement report of a UTC day matched against the ledger (API.md §12).

`POST` runs synchronously: the reports are fetched (outside any transaction), then the matching, the stored
reconciliation and the Idempotency-Key's record commit together; the answer is the finished run, `completed`,
or `failed` when the report could not be read (201 either way: the run happened and is stored).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.context import request_id, services, tenant_id
from app.http.endpoints import COMMON, links_to, operation, write
from app.http.io import query
from app.http.openapi import Operation
from app.http.schemas.reconciliations import Reconciliation, ReconciliationRequest
from core.errors import FieldError, ValidationFailed
from core.usecases.reconciliation import (
    Reconcile,
    check_reconcile,
    fetch_reports,
    get_reconciliation,
    record_reconciliation,
)
from core.views import reconciliation_view

bp = Blueprint("reconciliations", url_prefix="/api/v1")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(text: str) -> date:
    try:
        if _DAY.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValidationFailed([FieldError("date", "must be a UTC day, YYYY-MM-DD")])


@operation(bp, Operation(method="post", path="/api/v1/reconciliations",
                         summary="Reconcile a provider's settlement report of a UTC day with the ledger",
                         tag="reconciliations", operation_id="createReconciliation",
                         links=links_to("reconciliation_id", "getReconciliation"), request=ReconciliationRequest,
                         response=Reconciliation, response_status=201, idempotency="optional",
                         errors=(409, 422, *COMMON)))
async def create(request: Request, body: ReconciliationRequest) -> HTTPResponse:
    found = services(request)
    cmd = Reconcile(tenant_id=tenant_id(request), provider=body.provider, day=_day(body.date),
                    correlation_id=request_id(request))
    today = found.clock.now().date()
    check_reconcile(cmd, today=today)
    reports = await fetch_reports(found.provider(cmd.provider), cmd.day, today=today)
    grace = timedelta(seconds=found.settings.reconcile.grace)
    return await write(request, lambda uow: record_reconciliation(cmd, reports, uow=uow, clock=found.clock,
                                                                  grace=grace), reconciliation_view)


@operation(bp, Operation(method="get", path="/api/v1/reconciliations/{reconciliation_id}",
                         summary="Get a reconciliation", tag="reconciliations", operation_id="getReconciliation",
                         problems=("not_found",),
                         response=Reconciliation, errors=(404, *COMMON)))
async def show(request: Request, reconciliation_id: UUID) -> HTTPResponse:
    tenant = tenant_id(request)
    return await query(request, lambda uow: get_reconciliation(tenant, reconciliation_id, uow=uow),
                       reconciliation_view)
