"""The dead letter queue: work that ended in failure, listed for operators and re-driven on demand."""

from __future__ import annotations

from uuid import UUID

import attrs

from core.errors import InvalidStateTransition, NotFound, found
from core.payments import PaymentStatus, owed_reversals
from core.ports import Clock, TaskQueue, UnitOfWork, UnitOfWorkFactory
from core.refunds import RefundStatus
from core.usecases.late_refunds import may_have_succeeded
from core.work import PAYMENT, REFUND, DeadLetter, WorkItem

_UNFINISHED: dict[str, tuple[str, ...]] = {
    PAYMENT: (PaymentStatus.PENDING, PaymentStatus.PROCESSING), REFUND: (RefundStatus.PENDING,),
}


@attrs.frozen(kw_only=True)
class RecordDeadLetter:
    """Work whose every retry raised: what it was, the last error, and how many attempts were made."""

    item: WorkItem
    error: str
    attempts: int


async def record_dead_letter(cmd: RecordDeadLetter, *, uow: UnitOfWork, clock: Clock) -> DeadLetter:
    """Keep the work in the dead letter queue for inspection and re-drive (`payments dlq`)."""
    letter = DeadLetter.of(cmd.item, error=cmd.error[:1000], attempts=cmd.attempts, at=clock.now())
    uow.dead_letters.add(letter)
    return letter


async def list_dead_letters(*, uow: UnitOfWork, limit: int = 100) -> list[DeadLetter]:
    """The newest dead letters of every tenant."""
    return await uow.dead_letters.list(limit=limit)


async def retry_dead_letter(letter_id: UUID, *, uow_factory: UnitOfWorkFactory, queue: TaskQueue, clock: Clock) -> str:
    """Re-drive a dead letter's work to the workers; what it re-drove, as one line.

    Work whose payment or refund is still unfinished (its message died on an
    infrastructure error), or a failed payment that still owes the refund of a
    late charge, is enqueued again and finishes as if never interrupted.
    A refund that ended `failed` without a decline is enqueued again too: its
    work only looks it up at the provider, never refunds again, and a success
    found there is posted as a late refund (`late_refunds`).
    Any other payment or refund that ended `failed` is final — its money is back
    on the source and the ledger records it — so re-driving it raises
    `InvalidStateTransition` with what to do instead; nothing changes.
    Raises `NotFound` for an unknown id.
    """
    async with uow_factory() as uow:
        letter = found(await uow.dead_letters.get(letter_id), f"dead letter {letter_id}")
        if await uow.payments.get(letter.tenant_id, letter.target_id) is None and letter.kind == PAYMENT:
            raise NotFound(f"payment {letter.target_id} of dead letter {letter_id} no longer exists")
        status = await _status(uow, letter)
        if status not in _UNFINISHED[letter.kind] and not await _owes_reversal(uow, letter) \
                and not await _may_look_up(uow, letter):
            raise InvalidStateTransition(
                f"{letter.kind} {letter.target_id} is {status}: it is final and its money is settled; "
                f"create a new {letter.kind} to try again")
        await queue.enqueue_work([letter.work()])
        uow.dead_letters.mark_retried(letter)
    return f"re-enqueued {letter.kind} {letter.target_id} ({status})"


async def _owes_reversal(uow: UnitOfWork, letter: DeadLetter) -> bool:
    """A failed payment whose late charge is not refunded yet still has work to re-drive."""
    if letter.kind != PAYMENT:
        return False
    return bool(owed_reversals(await uow.payments.events(letter.tenant_id, letter.target_id)))


async def _may_look_up(uow: UnitOfWork, letter: DeadLetter) -> bool:
    """A failed refund that was not declined may have succeeded at the provider after all: worth asking."""
    if letter.kind != REFUND:
        return False
    refund = await uow.refunds.lock(letter.tenant_id, letter.target_id)
    return refund is not None and may_have_succeeded(
        await uow.payments.events(letter.tenant_id, refund.payment_id), refund)


async def _status(uow: UnitOfWork, letter: DeadLetter) -> str | None:
    if letter.kind == PAYMENT:
        payment = await uow.payments.get(letter.tenant_id, letter.target_id)
        return payment.status if payment else None
    refund = await uow.refunds.lock(letter.tenant_id, letter.target_id)
    return refund.status if refund else None
