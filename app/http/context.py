"""What a handler reads from around its request: the process's services and who is asking."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from sanic import Request

if TYPE_CHECKING:
    from app.bootstrap import Services


def services(request: Request) -> Services:
    """The process's adapters, built by the composition root when the server started."""
    found: Services = request.app.ctx.services
    return found


def tenant_id(request: Request) -> UUID:
    """The tenant of the authenticated API key (set by `auth.secured`)."""
    tenant: UUID = request.ctx.principal.tenant_id
    return tenant


def request_id(request: Request) -> str:
    """The request's id: the client's X-Request-ID if valid, else a generated one; events carry it."""
    found: str = request.ctx.request_id
    return found
