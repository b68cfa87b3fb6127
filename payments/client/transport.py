# Generated from aio_transport.py by payments/client/unasync.py: edit aio_transport.py, then run
# `python -m payments.client.unasync`. (Import order follows the source's.)
# ruff: noqa: I001, UP028
"""The synchronous client's HTTP: one logical call, its Idempotency-Key, retries, problems raised as errors."""

from __future__ import annotations

import time
import json
import uuid
from collections.abc import Iterator, Callable, Mapping
from typing import Any, TypeVar

import httpx

from payments.client.codec import decode, encode, query
from payments.client.errors import ApiError, problem
from payments.client.retries import Retries, retry_after
from payments.client.routes import Page, Route

T = TypeVar("T")
USER_AGENT = "payments-python-client"
#: A request that may have been lost on the way or its answer on the way back: worth sending again under its key.
#: (Other transport errors, such as an unsupported URL scheme, would fail again the same way.)
_LOST = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


class Transport:
    """Sends a route's requests with the API key; see `Client` for the parameters."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: Retries | None = None,
                 http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.retries = retries or Retries()
        self._sleep = sleep
        self._own = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT,
                         "Accept": "application/json"}

    def call(self, route: Route, cls: type[T], *, path: Mapping[str, str] | None = None, body: Any = None,
                   params: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> T:
        """Send `route`'s request and structure its JSON answer into `cls` (`route.response`)."""
        if cls is not route.response or route.list_response:
            raise TypeError(f"{route.operation_id} answers {route.response}, not {cls}")
        response = self.send(route, path=path, body=body, params=params, idempotency_key=idempotency_key)
        return decode(response.json(), cls)

    def page(self, route: Route, cls: type[T], *, path: Mapping[str, str] | None = None,
                   params: Mapping[str, Any] | None = None) -> Page[T]:
        """One page of a list route, its items structured into `cls`."""
        if cls is not route.response or not route.list_response:
            raise TypeError(f"{route.operation_id} does not list {cls}")
        answer = (self.send(route, path=path, params=params)).json()
        return Page(data=[decode(item, cls) for item in answer["data"]], has_more=answer["has_more"],
                    next_cursor=answer["next_cursor"])

    def every(self, route: Route, cls: type[T], *, path: Mapping[str, str] | None = None,
                    params: Mapping[str, Any] | None = None) -> Iterator[T]:
        """Every item of a list route, page after page along `next_cursor` (100 a page unless `limit` says)."""
        ask = {"limit": 100, **(params or {})}
        while True:
            page = self.page(route, cls, path=path, params=ask)
            for item in page.data:
                yield item
            if not page.has_more or page.next_cursor is None:
                return
            ask["cursor"] = page.next_cursor

    def send(self, route: Route, *, path: Mapping[str, str] | None = None, body: Any = None,
                   params: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> httpx.Response:
        """The successful answer to one logical call, after retries; an `ApiError` (or the last connection error)
        if there is none. A write is sent with one Idempotency-Key (the caller's, else a new UUID) that every
        retry repeats, so a retry after a timeout or a 503 can never do the work twice."""
        headers = dict(self._headers)
        if route.idempotency != "none":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        elif idempotency_key is not None:
            raise ValueError(f"{route.operation_id} takes no Idempotency-Key")
        content = None
        if body is not None:
            content = json.dumps(encode(body)).encode()
            headers["Content-Type"] = "application/json"
        url = self._base_url + route.url(**(path or {}))
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(route.method.upper(), url, params=query(dict(params or {})),
                                                    content=content, headers=headers)
            except _LOST as lost:
                wait = self.retries.delay(attempt, None)
                if wait is None:
                    raise lost
                self._sleep(wait)
                continue
            if response.is_success:
                return response
            error = _error(response)
            wait = self.retries.delay(attempt, error)
            if wait is None:
                raise error
            self._sleep(wait)

    def close(self) -> None:
        """Close the connection pool, unless it was the caller's."""
        if self._own:
            self._http.close()


def _error(response: httpx.Response) -> ApiError:
    return problem(response.status_code, response.reason_phrase, response.content,
                   retry_after(response.headers.get("retry-after")))
