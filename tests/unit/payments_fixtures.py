"""A small world for payment, refund and dead-letter tests: store, clock, providers, locks and the use cases."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

import attrs

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from adapters.memory.locks import InMemoryLocks
from adapters.memory.providers import InMemoryProvider, RecordedCharge, RecordedRefund
from core.accounts import CLEARING, SYSTEM_SHARDS, Account, settlement
from core.money import Money
from core.payments import Payment, PaymentEvent, fold
from core.refunds import Refund, RefundStatus
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.external_payments import CreateExternalPayment, cancel_payment, create_external_payment
from core.usecases.payment_attempt import process_payment
from core.usecases.payments import get_payment, list_payment_events
from core.usecases.refund_attempt import process_refund
from core.usecases.refund_requests import RequestRefund, request_refund
from core.usecases.transfers import MakeTransfer, make_transfer
from core.usecases.worker_deps import Deps, Outcome
from core.work import PAYMENT, REFUND, DeadLetter, RetryPolicy, WorkItem
from tests.unit.conftest import FakeClock


@attrs.define
class World:
    """One tenant's payments on the in-memory adapters, driven through the use cases as the API and workers do."""

    store: InMemoryStore
    clock: FakeClock
    tenant_id: UUID
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    providers: dict[str, InMemoryProvider] = attrs.field(
        factory=lambda: {name: InMemoryProvider(name) for name in ("stripe", "paypal")})
    locks: InMemoryLocks = attrs.field(factory=InMemoryLocks)

    def deps(self, *, locks: InMemoryLocks | None = None, policy: RetryPolicy | None = None) -> Deps:
        return Deps(uow_factory=self.store, providers=lambda name: self.providers[name], locks=locks or self.locks,
                    clock=self.clock, policy=policy or self.policy)

    # --- the API side ---------------------------------------------------------------------------

    async def account(self, balance: int | None = None, currency: str = "USD", user_id: str = "alice",
                      tenant_id: UUID | None = None) -> Account:
        initial = Money(balance, currency) if balance is not None else None
        async with self.store() as uow:
            account = await create_account(
                CreateAccount(tenant_id=tenant_id or self.tenant_id, user_id=user_id, currency=currency,
                              initial_balance=initial),
                uow=uow, clock=self.clock,
            )
        return account

    async def pay(self, source: UUID, amount: int = 2_500, *, provider: str = "stripe", currency: str = "USD",
                  metadata: dict[str, str] | None = None, correlation_id: str | None = "req-1") -> Payment:
        async with self.store() as uow:
            payment = await create_external_payment(
                CreateExternalPayment(tenant_id=self.tenant_id, source_account_id=source,
                                      amount=Money(amount, currency), provider=provider, description="order 7",
                                      metadata=metadata or {}, correlation_id=correlation_id),
                uow=uow, clock=self.clock,
            )
        return payment

    async def transfer(self, source: UUID, destination: UUID, amount: int) -> Payment:
        async with self.store() as uow:
            payment = await make_transfer(
                MakeTransfer(tenant_id=self.tenant_id, source_account_id=source, destination_account_id=destination,
                             amount=Money(amount, "USD"), correlation_id="req-t"),
                uow=uow, clock=self.clock,
            )
        return payment

    async def cancel(self, payment_id: UUID, tenant_id: UUID | None = None) -> Payment:
        async with self.store() as uow:
            payment = await cancel_payment(tenant_id or self.tenant_id, payment_id, uow=uow, clock=self.clock,
                                           correlation_id="req-cancel")
        return payment

    async def refund(self, payment_id: UUID, amount: str | None = None, *, reason: str | None = None,
                     tenant_id: UUID | None = None) -> Refund:
        async with self.store() as uow:
            refund = await request_refund(
                RequestRefund(tenant_id=tenant_id or self.tenant_id, payment_id=payment_id, amount=amount,
                              reason=reason, correlation_id="req-refund"),
                uow=uow, clock=self.clock,
            )
        return refund

    # --- the worker side ------------------------------------------------------------------------

    def work(self, kind: str, target_id: UUID) -> WorkItem:
        return WorkItem(kind=kind, tenant_id=self.tenant_id, target_id=target_id)

    async def process(self, payment_id: UUID, deps: Deps | None = None) -> Outcome:
        return await process_payment(self.work(PAYMENT, payment_id), deps=deps or self.deps())

    async def process_refund(self, refund_id: UUID, deps: Deps | None = None) -> Outcome:
        return await process_refund(self.work(REFUND, refund_id), deps=deps or self.deps())

    async def completed(self, source: UUID, amount: int = 10_000, **metadata: str) -> Payment:
        """An external payment charged through stripe."""
        payment = await self.pay(source, amount, metadata=metadata)
        outcome = await self.process(payment.id)
        assert (outcome.result, outcome.status) == ("done", "completed")
        return await self.payment(payment.id)

    async def declined_refund(self) -> Refund:
        """A refund of 10.00 of a new completed payment of 100.00 that the provider declined (ended `failed`)."""
        source = await self.account(10_000)
        payment = await self.completed(source.id, 10_000, mock_refund_outcome="decline")
        refund = await self.refund(payment.id, "10.00")
        assert (await self.process_refund(refund.id)).status == RefundStatus.FAILED
        return self.store.refunds[refund.id]

    # --- what the store holds -------------------------------------------------------------------

    def balance(self, account_id: UUID) -> int:
        return self.store.accounts[account_id].balance

    def system(self, kind: str, currency: str = "USD") -> int:
        """The balance of a system account: the sum of its rows (0 while none exists; API.md §4)."""
        rows = [a for a in self.store.accounts.values()
                if (a.tenant_id, a.kind, a.currency) == (self.tenant_id, kind, currency)]
        assert len({a.shard for a in rows}) == len(rows) <= SYSTEM_SHARDS  # one row per shard
        return sum(a.balance for a in rows)

    def clearing(self, currency: str = "USD") -> int:
        return self.system(CLEARING, currency)

    def settled(self, provider: str = "stripe", currency: str = "USD") -> int:
        return self.system(settlement(provider), currency)

    async def payment(self, payment_id: UUID) -> Payment:
        async with self.store() as uow:
            return await get_payment(self.tenant_id, payment_id, uow=uow)

    async def events(self, payment_id: UUID) -> list[PaymentEvent]:
        async with self.store() as uow:
            return await list_payment_events(self.tenant_id, payment_id, uow=uow)

    async def event_types(self, payment_id: UUID) -> list[str]:
        return [e.type for e in await self.events(payment_id)]

    def topics(self, aggregate_id: UUID) -> list[str]:
        return [m.topic for m in self.store.outbox if m.aggregate_id == aggregate_id]

    def letters(self, target_id: UUID) -> list[DeadLetter]:
        return [d for d in self.store.dead_letters.values() if d.target_id == target_id]

    def entries(self, payment_id: UUID) -> list[tuple[UUID, int]]:
        return [(e.account_id, e.amount) for e in self.store.entries if e.payment_id == payment_id]

    async def check(self) -> None:
        """Every payment folds from its events, events are numbered 0..n with no gap, and the ledger has no drift."""
        for payment in [p for p in self.store.payments.values() if p.tenant_id == self.tenant_id]:
            events = await self.events(payment.id)
            assert [e.sequence for e in events] == list(range(len(events)))
            assert events[-1].sequence == payment.version
            assert fold(events) == payment.snapshot(), payment.id
        assert await InMemoryLedgerAudit(self.store).drift() == []
        assert self.store.pending_system == {}
        assert all(not lock.locked() for lock in self.store.row_locks.values())


def charges(world: World, provider: str = "stripe") -> list[RecordedCharge]:
    """The charges the provider made (declined ones are recorded too, but are not charges)."""
    return [c for c in world.providers[provider].charges.values() if c.succeeded]


def refunds(world: World, provider: str = "stripe") -> list[RecordedRefund]:
    """The refunds the provider made."""
    return [r for r in world.providers[provider].refunds.values() if r.succeeded]


def snapshot(store: InMemoryStore) -> dict[str, Any]:
    """Everything a unit of work may change, to compare before and after a refused command."""
    return {
        "accounts": copy.deepcopy(store.accounts), "entries": list(store.entries),
        "payments": copy.deepcopy(store.payments), "events": {k: list(v) for k, v in store.events.items() if v},
        "outbox": list(store.outbox), "refunds": copy.deepcopy(store.refunds),
        "dead_letters": dict(store.dead_letters),
    }
