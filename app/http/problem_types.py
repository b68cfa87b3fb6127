"""Every problem type of the API (API.md §1): its status, its title and the page `GET /problems/<slug>` serves.

The one table of slugs: `problems.STATUS` and `problems.TITLES` are read off it, so no problem body can name a
`type` that has no page. Texts are plain text in which `backticks` mark code (the HTML page sets it as code).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class ProblemType:
    """One `/problems/<slug>`: the status and title of every body of its type, when it is answered, what to do."""

    status: int
    title: str
    description: str
    what_to_do: str


#: 429 and 503: the attempt stored nothing under its Idempotency-Key (API.md §1), so repeating it is safe.
_RETRY = ("Wait the seconds the `Retry-After` header gives, then send the same request again with the same "
          "`Idempotency-Key`. The failed attempt stored nothing under the key, so the retry does the work once, "
          "or replays the first success if an earlier attempt had one.")

PROBLEM_TYPES: dict[str, ProblemType] = {
    "malformed_json": ProblemType(
        status=400, title="Malformed JSON",
        description="The request body is not JSON: not UTF-8, cut short, `NaN` or `Infinity`, or an object that "
                    "repeats a key (`{\"amount\": \"1\", \"amount\": \"2\"}` is refused rather than read "
                    "last-wins). Any route that takes a body can answer it. The server also answers a 400 of this "
                    "type for a request line or header it cannot parse at all.",
        what_to_do="Send a single well-formed JSON document, UTF-8, each key once per object. Nothing was done."),
    "validation_error": ProblemType(
        status=422, title="Validation error",
        description="The body or the query string breaks a rule of the contract: a missing or unknown field (a "
                    "typo such as `ammount` is refused, not ignored), an unknown query parameter, an amount with "
                    "more decimals than the currency's minor unit, an amount not above zero, a currency that is "
                    "not an active ISO 4217 code, a `limit` outside 1 to 100, a cursor this API did not return, "
                    "metadata over 20 keys, an `Idempotency-Key` that is not 1 to 255 printable ASCII characters.",
        what_to_do="Fix each field the `errors` array names (`field` and `message`) and send the request again. "
                   "Nothing was done."),
    "idempotency_key_missing": ProblemType(
        status=400, title="Idempotency-Key missing",
        description="`POST /api/v1/transfers`, `POST /api/v1/payments`, `POST /api/v1/payments/{id}/refund` and "
                    "`POST /api/v1/batches` require an `Idempotency-Key` header, and it was not sent.",
        what_to_do="Choose a unique key for the operation (a UUID is a good choice), send it as `Idempotency-Key`, "
                    "and reuse that same key for every retry of that operation."),
    "idempotency_key_reused": ProblemType(
        status=422, title="Idempotency-Key reused",
        description="The `Idempotency-Key` was already used by this tenant, within its retention (24 h by "
                    "default, `PAYMENTS_IDEMPOTENCY_TTL`), for a different request: another method, path or body.",
        what_to_do="A retry must repeat the first request exactly. For a new operation, use a new key."),
    "idempotency_request_in_progress": ProblemType(
        status=409, title="Request in progress",
        description="A request with the same `Idempotency-Key` is still being processed (for example a client "
                    "retried before the first attempt answered).",
        what_to_do="Wait a moment and send the same request with the same key again: it then replays the first "
                   "request's answer, byte for byte, with `Idempotent-Replayed: true`."),
    "unauthorized": ProblemType(
        status=401, title="Unauthorized",
        description="A `/api/v1` request without `Authorization: Bearer <api key>`, or with a key that is unknown "
                    "or revoked (`payments keys revoke` takes effect within 10 s).",
        what_to_do="Send a valid key as `Authorization: Bearer sk_...`; `payments keys create` makes one and shows "
                   "it once."),
    "forbidden": ProblemType(
        status=403, title="Forbidden",
        description="The API key is valid but lacks the scope the operation needs: `read` for every `GET`, "
                    "`write` for every `POST`, `PATCH` and `DELETE`. Another tenant's resource is never answered "
                    "with this type; it is `not_found`.",
        what_to_do="Use a key with the scope the `detail` names, or have one created with "
                   "`payments keys create --scopes read,write`."),
    "not_found": ProblemType(
        status=404, title="Not found",
        description="No such resource in the caller's tenant: an unknown id, an id that is not a UUID, another "
                    "tenant's account or payment, a tenant's internal system account, or a path this API does not "
                    "serve. A transfer or payment naming such an account answers it too.",
        what_to_do="Check the id and the path (`GET /problems` lists these types, `/docs` the operations). "
                   "Retrying the same request will not help."),
    "method_not_allowed": ProblemType(
        status=405, title="Method not allowed",
        description="The path exists but does not take this method, e.g. `DELETE /api/v1/accounts/{id}` or "
                    "`PUT /api/v1/payments/{id}`.",
        what_to_do="Use one of the methods the `Allow` header lists."),
    "insufficient_funds": ProblemType(
        status=422, title="Insufficient funds",
        description="A debit needs `amount <= available_balance + overdraft_limit` on the source account "
                    "(`available_balance` is `balance` less its active holds). `POST /api/v1/transfers`, "
                    "`POST /api/v1/payments` and a transfer of `POST /api/v1/batches` answer it when the source "
                    "is short. Nothing was moved.",
        what_to_do="Check `GET /api/v1/accounts/{id}/balance`, then send a smaller amount, fund the account first, "
                   "or raise its `overdraft_limit` with `PATCH /api/v1/accounts/{id}`."),
    "currency_mismatch": ProblemType(
        status=422, title="Currency mismatch",
        description="The request's `currency` is not the currency of an account it moves money from or to, or the "
                    "two accounts hold different currencies (`POST /api/v1/transfers`, `POST /api/v1/payments`, "
                    "a transfer of `POST /api/v1/batches`). This API does not convert currencies.",
        what_to_do="Use accounts in the same currency, and give that currency in the request."),
    "same_account": ProblemType(
        status=422, title="Same account",
        description="A transfer or internal payment names the same account as source and destination.",
        what_to_do="Give two different accounts."),
    "invalid_state_transition": ProblemType(
        status=409, title="Invalid state transition",
        description="The resource's status does not allow the operation: cancelling a payment that is no longer "
                    "`pending` (`POST /api/v1/payments/{id}/cancel`), refunding one that is not `completed` or "
                    "`partially_refunded` (`POST /api/v1/payments/{id}/refund`), or closing an account whose "
                    "balance is not zero, or with an external payment from it or a refund to it still in flight "
                    "(`PATCH /api/v1/accounts/{id}`).",
        what_to_do="Read the resource's current `status` (`GET` it) and act on that: for example refund a "
                   "completed payment instead of cancelling it, or empty an account before closing it."),
    "refund_exceeds_payment": ProblemType(
        status=422, title="Refund exceeds payment",
        description="`POST /api/v1/payments/{id}/refund`: the amount, added to the payment's pending and "
                    "succeeded refunds, would be more than the payment's amount.",
        what_to_do="List the refunds (`GET /api/v1/payments/{id}/refunds`) and refund at most what remains."),
    "account_frozen": ProblemType(
        status=409, title="Account frozen",
        description="An account the request moves money from or to is `frozen` (`PATCH /api/v1/accounts/{id}` "
                    "`{\"status\": \"frozen\"}`): until it is unfrozen it takes part in no new movement "
                    "(`POST /api/v1/transfers`, `POST /api/v1/payments`, a transfer of `POST /api/v1/batches`). "
                    "Refunds still reach it: they undo an earlier movement.",
        what_to_do="Unfreeze it with `PATCH /api/v1/accounts/{id}` `{\"status\": \"active\"}` if that is "
                   "intended, then send the request again; or use another account."),
    "account_closed": ProblemType(
        status=409, title="Account closed",
        description="An account the request moves money from or to (`POST /api/v1/transfers`, "
                    "`POST /api/v1/payments`, a transfer of `POST /api/v1/batches`, a refund), or whose status or "
                    "overdraft limit `PATCH /api/v1/accounts/{id}` would change, is `closed`. Closing is final: a "
                    "closed account takes part in no movement and its status never changes again (its metadata "
                    "may).",
        what_to_do="Use another account (open one with `POST /api/v1/accounts`). Retrying will not help."),
    "batch_failed": ProblemType(
        status=422, title="Batch failed",
        description="An atomic `POST /api/v1/batches` (or its dry run) in which at least one transfer would fail. "
                    "Nothing was written. `errors` lists each failing transfer's `index` with the problem "
                    "(`type`, `title`, `status`, `detail`) it alone would have answered.",
        what_to_do="Fix or remove the transfers `errors` names and send the batch again with a new "
                   "`Idempotency-Key`, or send it with `\"atomic\": false` to let the others commit."),
    "payload_too_large": ProblemType(
        status=413, title="Payload too large",
        description="The request body is over the limit: 64 KiB (`PAYMENTS_SERVER_MAX_BODY_SIZE`), or 1 MiB "
                    "for `POST /api/v1/batches`.",
        what_to_do="Send less: split a batch into several, keep metadata short."),
    "request_header_fields_too_large": ProblemType(
        status=431, title="Request headers too large",
        description="The request's headers together are over the server's limit (8 KiB).",
        what_to_do="Send fewer or shorter headers (a long `Cookie` is the usual cause)."),
    "request_timeout": ProblemType(
        status=408, title="Request timeout",
        description="The client did not send the whole request (headers and body) within the server's request "
                    "timeout (60 s). No handler ran.",
        what_to_do="Send the request again, with the same `Idempotency-Key` if it has one."),
    "request_uri_too_long": ProblemType(
        status=414, title="URI too long",
        description="The request line's URL is over 65,535 bytes.",
        what_to_do="Send a shorter URL: fewer or shorter query parameters."),
    "requested_range_not_satisfiable": ProblemType(
        status=416, title="Range not satisfiable",
        description="The server's framework answers it for a `Range` header it cannot satisfy. No route of this "
                    "API honours `Range` (the docs assets under `/docs/static` ignore it), so a client should not "
                    "see it.",
        what_to_do="Leave out the `Range` header, or ask for a range within the file."),
    "expectation_failed": ProblemType(
        status=417, title="Expectation failed",
        description="The request has an `Expect` header other than `100-continue`, the only one the server knows.",
        what_to_do="Leave out the `Expect` header, or send `Expect: 100-continue`."),
    "rate_limited": ProblemType(
        status=429, title="Too many requests",
        description="The API key sent more requests than its rate limit allows "
                    "(`PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND`, `PAYMENTS_RATE_LIMIT_BURST`; one bucket per key, "
                    "shared by every server process). Nothing was done.",
        what_to_do=_RETRY + " Spread requests out; a client that keeps hitting it needs a higher limit."),
    "internal_error": ProblemType(
        status=500, title="Internal server error",
        description="An unexpected failure of the server: a bug, never an answer about the request. It is logged "
                    "with its traceback under the `request_id` of the body.",
        what_to_do="Send the same request again with the same `Idempotency-Key`: an answer of 500 or more is "
                   "never stored for a key, so the retry either does the work or replays the first success. If it "
                   "persists, report the `request_id`."),
    "service_unavailable": ProblemType(
        status=503, title="Service unavailable",
        description="A dependency is down or restarting (PostgreSQL, Redis, the task queue), the transaction lost "
                    "a race with concurrent ones too many times, or too many requests are already waiting for "
                    "the same account. Any operation can answer it; `/health/ready` names a failing dependency.",
        what_to_do=_RETRY),
}
