"""The HTTP edge's mapping of core errors: what idempotency keeps for a key must be a 4xx answer.

`run_idempotent` stores the rendered answer of every error that is not `transient`; the database
accepts only 2xx-4xx responses for a key, and a retry must be able to succeed after a 5xx. So every
non-transient error of core must map to a 4xx status here, and every transient one to 503.
"""

from __future__ import annotations

import json

import pytest

import core.errors
from app.http.problems import problem_for
from core.errors import CoreError


def _subclasses(cls: type[CoreError]) -> list[type[CoreError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


CORE_ERRORS = sorted({cls for cls in _subclasses(CoreError) if cls.__module__ == core.errors.__name__},
                     key=lambda cls: cls.__name__)


def _instance(cls: type[CoreError]) -> CoreError:
    if cls is core.errors.BatchFailed:
        return cls([core.errors.LegFailure(0, core.errors.InsufficientFunds("detail"))])  # type: ignore[arg-type]
    return cls([]) if cls is core.errors.ValidationFailed else cls("detail")  # type: ignore[arg-type]


def test_every_core_error_is_checked() -> None:
    assert {"NotFound", "InsufficientFunds", "Unavailable", "ConcurrencyConflict", "ValidationFailed"} <= {
        cls.__name__ for cls in CORE_ERRORS}


@pytest.mark.parametrize("cls", CORE_ERRORS, ids=lambda cls: cls.__name__)
def test_what_idempotency_keeps_is_a_4xx_and_what_it_does_not_is_503(cls: type[CoreError]) -> None:
    status = problem_for(_instance(cls), "req-1").status
    if cls.transient:
        assert status == 503
    else:
        assert 400 <= status < 500


def test_batch_failed_lists_each_failing_transfer_with_its_problem() -> None:
    error = core.errors.BatchFailed([core.errors.LegFailure(1, core.errors.InsufficientFunds("account x is short")),
                                     core.errors.LegFailure(4, core.errors.NotFound("account y not found"))])
    response = problem_for(error, "req-1")
    body = json.loads(response.body)
    assert (response.status, body["type"], body["status"]) == (422, "/problems/batch_failed", 422)
    assert body["detail"] == "transfer 1 fails: account x is short (and 1 more); nothing was written"
    assert body["errors"] == [
        {"index": 1, "type": "/problems/insufficient_funds", "title": "Insufficient funds", "status": 422,
         "detail": "account x is short"},
        {"index": 4, "type": "/problems/not_found", "title": "Not found", "status": 404,
         "detail": "account y not found"}]
