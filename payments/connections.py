"""The API's connections while it drains after SIGTERM.

Sanic closes every connection that is idle when the drain begins: one between two keep-alive requests, but also
one it has just accepted, whose request is on its way or already received and not yet read. A client that sent
its request on such a connection reads "connection closed" and cannot tell whether it was done. Under grouped
writes (the group commit answers its requests together, so their clients send their next ones together) a whole
group of clients can be in that window at once. `DrainingProtocol` answers those requests, as Go's
`http.Server.Shutdown` does: a connection that has not sent its first request yet gets `FIRST_REQUEST_GRACE`
seconds to send it, one whose request has arrived unread is served; the answer says `Connection: close`
(`processes._close_when_draining`). A keep-alive connection idle between requests is closed at once, as before.
"""

from __future__ import annotations

from typing import Any

from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

#: How long, into the drain, a connection accepted before it has to send its first request (Go gives 5 s too).
FIRST_REQUEST_GRACE = 5.0
#: How often a kept connection is looked at again until it is closed.
RECHECK = 0.05


class DrainingProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, keeping open through the drain a connection with a request still to read."""

    __slots__ = ("_spoke",)  # whether the client has sent anything yet on this connection (Sanic's are slotted)

    def connection_made(self, transport: Any) -> None:
        self._spoke = False
        super().connection_made(transport)  # type: ignore[no-untyped-call]  # Sanic leaves it untyped

    def data_received(self, data: bytes) -> None:
        self._spoke = True
        super().data_received(data)

    def close_if_idle(self) -> bool:
        if not self._unread():
            return bool(super().close_if_idle())
        self.loop.call_later(RECHECK, self._close_once_idle, self.loop.time() + FIRST_REQUEST_GRACE)
        return False

    def _unread(self) -> bool:
        """Not handling a request, but one has arrived unread or the client has sent nothing yet."""
        http: Any = self.http
        idle = http is None or http.stage is Stage.IDLE
        return idle and (bool(self.recv_buffer) or not self._spoke)

    def _close_once_idle(self, deadline: float) -> None:
        """Close the connection once it is idle with nothing to read (its request answered, keep-alive or not),
        or once it has waited past `deadline` for its first request; until then look again every `RECHECK`."""
        if self.transport is None or self.transport.is_closing():
            return
        # kept while its first request may still come; closed once idle, unless a request is in progress
        if (self._unread() and self.loop.time() < deadline) or not super().close_if_idle():
            self.loop.call_later(RECHECK, self._close_once_idle, deadline)
