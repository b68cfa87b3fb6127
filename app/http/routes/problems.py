"""GET /problems and /problems/<slug> (no auth): the page each problem body's `type` names, HTML or JSON."""

from __future__ import annotations

import html
import re
from typing import Any

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi as sanic_ext_openapi

from app.http.html import page as html_page
from app.http.io import dumps
from app.http.problem_types import PROBLEM_TYPES, ProblemType
from app.http.problems import ApiError
from core.errors import FieldError, ValidationFailed

bp = Blueprint("problems")

INDEX = "/problems"
_HTML = "text/html; charset=utf-8"
_CODE = re.compile(r"`([^`]+)`")
_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "code{background:#f3f3f3;padding:0 .2em;border-radius:3px}h1 small{color:#777;font-weight:normal}"
          "table{border-collapse:collapse}td,th{text-align:left;padding:.2rem .8rem .2rem 0}")


def describe(slug: str, kind: ProblemType) -> dict[str, Any]:
    """A problem type as JSON: what `GET /problems/<slug>` answers with `Accept: application/json`."""
    return {"slug": slug, "title": kind.title, "status": kind.status, "description": kind.description,
            "what_to_do": kind.what_to_do}


@bp.get(INDEX)
async def index(request: Request) -> HTTPResponse:
    if _wants_json(request):
        return _json({"data": [describe(slug, kind) for slug, kind in PROBLEM_TYPES.items()]})
    rows = "\n".join(f'<tr><td><a href="{INDEX}/{slug}"><code>{slug}</code></a></td><td>{kind.status}</td>'
                     f"<td>{html.escape(kind.title)}</td></tr>" for slug, kind in PROBLEM_TYPES.items())
    return _html("Problem types", "<h1>Problem types</h1>\n<p>Every error of this API is an RFC 9457 problem "
                 "(<code>application/problem+json</code>) whose <code>type</code> is one of these pages.</p>\n"
                 f"<table>\n<tr><th>type</th><th>status</th><th>title</th></tr>\n{rows}\n</table>")


@bp.get(f"{INDEX}/<slug:str>")
async def page(request: Request, slug: str) -> HTTPResponse:
    kind = PROBLEM_TYPES.get(slug)
    if kind is None:
        raise ApiError("not_found", f"no problem type is named {slug!r}; GET {INDEX} lists them")
    if _wants_json(request):
        return _json(describe(slug, kind))
    return _html(f"{kind.title} ({kind.status})", f"""<h1>{html.escape(kind.title)} <small>{kind.status}</small></h1>
<p><code>type: {INDEX}/{slug}</code> &middot; HTTP status {kind.status}</p>
<h2>When it happens</h2>
<p>{_text(kind.description)}</p>
<h2>What to do</h2>
<p>{_text(kind.what_to_do)}</p>
<p><a href="{INDEX}">All problem types</a></p>""")


# Not an /api/v1 operation: like /health and /docs, out of the OpenAPI document (and of sanic-ext's, if re-enabled).
for _handler in (index, page):
    sanic_ext_openapi.exclude()(_handler)


def _wants_json(request: Request) -> bool:
    """`?format=json`, or an Accept header preferring JSON to HTML; HTML otherwise (browsers, `*/*`, none)."""
    chosen: str | None = request.args.get("format")
    if chosen is not None and chosen not in {"html", "json"}:
        raise ValidationFailed([FieldError("format", "must be html or json")])
    if chosen is not None:
        return chosen == "json"
    return request.accept.match("text/html", "application/json").mime == "application/json"


def _text(text: str) -> str:
    """Plain text to HTML: escaped, `backticks` set as code."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))


def _json(body: Any) -> HTTPResponse:
    return HTTPResponse(dumps(body), content_type="application/json", headers={"Vary": "Accept"})


def _html(title: str, body: str) -> HTTPResponse:
    document = html_page(title, head=f"<style>{_STYLE}</style>\n", body=body + "\n")
    return HTTPResponse(document, content_type=_HTML, headers={"Vary": "Accept"})
