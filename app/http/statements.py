"""Statements streamed as they are read (API.md §3): the head from the period's totals, then the entries a page
at a time, each page read in its own short read-only unit of work, so that neither the process nor a pooled
connection holds a whole period, however many entries it has."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from sanic import HTTPResponse, Request

from app.http.io import read
from core.ledger import Entry, Statement
from core.ports import UnitOfWork
from core.usecases.statements import statement_page
from core.views import entry_view, statement_head

CSV_COLUMNS = ("id", "created_at", "type", "amount", "balance_after", "currency", "payment_id", "hash")


def _csv(rows: Iterable[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")  # RFC 4180
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in CSV_COLUMNS])
    return text.getvalue().encode()


def _json_entries(entries: Sequence[Entry], first: bool) -> bytes:
    body = ",".join(json.dumps(entry_view(entry), ensure_ascii=False, separators=(",", ":")) for entry in entries)
    return (body if first else "," + body).encode()


def _page(statement: Statement, after: Entry | None) -> Callable[[UnitOfWork], Awaitable[Sequence[Entry]]]:
    return lambda uow: statement_page(statement, after=after, uow=uow)


async def stream_statement(request: Request, statement: Statement, *, as_csv: bool) -> HTTPResponse:
    """Answer 200 with the statement, JSON (the head's fields, then `entries`) or CSV (a header row, then a row
    per entry), sent a page of entries at a time."""
    name = f"statement-{statement.account.id}"
    response: HTTPResponse = await request.respond(
        content_type="text/csv; charset=utf-8" if as_csv else "application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'} if as_csv else None)
    if as_csv:
        await response.send(_csv([dict(zip(CSV_COLUMNS, CSV_COLUMNS, strict=True))]))
    else:
        head = json.dumps(statement_head(statement), ensure_ascii=False, separators=(",", ":"))
        await response.send((head[:-1] + ',"entries":[').encode())
    after: Entry | None = None
    first = True
    while True:
        page = await read(request, _page(statement, after), may_lag=True)  # the same source as its head
        if not page:
            break
        await response.send(_csv(entry_view(entry) for entry in page) if as_csv else _json_entries(page, first))
        after, first = page[-1], False
    if not as_csv:
        await response.send(b"]}")
    await response.eof()  # type: ignore[no-untyped-call]
    return response
