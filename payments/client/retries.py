"""When the client repeats a request, and after how long: 409 in progress, 429, 503 and lost connections."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import attrs

from payments.client.errors import ApiError, IdempotencyRequestInProgress, RateLimited, ServiceUnavailable

#: Answers worth repeating as they are: the request did nothing (429, 503: API.md §1 stores nothing under the key)
#: or its first attempt is still running (409 idempotency_request_in_progress: the repeat replays its answer).
#: Any other 409 (invalid_state_transition, account_frozen, ...) is final and raised at once.
RETRYABLE = (IdempotencyRequestInProgress, RateLimited, ServiceUnavailable)


@attrs.frozen(kw_only=True)
class Retries:
    """The retry policy: at most `attempts` tries of one logical call, all under one Idempotency-Key.

    Between tries it waits what `Retry-After` says (a 429 or 503 always sends it), else an exponential backoff
    with full jitter: up to `backoff` × 2^(try − 1) seconds, at most `max_backoff`. A `Retry-After` longer than
    `max_retry_after` is not waited out: the error is raised for the caller to decide.
    `Retries(attempts=1)` turns retrying off.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: ApiError | None) -> float | None:
        """Seconds to wait before try `attempt + 1`, after try `attempt` failed with `error` (`None`: the
        connection failed or timed out); `None` when the failure is final."""
        if attempt >= self.attempts or (error is not None and not isinstance(error, RETRYABLE)):
            return None
        if error is not None and error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))  # jitter, not secrecy


def retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds, or an HTTP date (RFC 9110 §10.2.3); `None` if absent or bad."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
