"""Ports: the Protocols core needs from the outside world, one module per concept. Adapters fit them structurally.

`from core.ports import X` names every port.
"""

from core.ports.batches import Batches
from core.ports.coordination import Clock, Lease, Locks
from core.ports.holds import Holds
from core.ports.idempotency import IdempotencyKeys
from core.ports.ledger import Accounts, Ledger, LedgerAudit
from core.ports.outbox import ClaimedOutbox, Events, Outbox, OutboxFeed
from core.ports.paging import Page
from core.ports.payments import PaymentFilter, Payments, Refunds
from core.ports.reconciliations import Reconciliations
from core.ports.tenants import Tenants
from core.ports.unit_of_work import Reads, UnitOfWork, UnitOfWorkFactory
from core.ports.webhooks import DueDeliveries, Resolver, Webhooks, WebhookSender
from core.ports.work import DeadLetters, EventMetrics, InFlight, TaskQueue

__all__ = [
    "Accounts",
    "Batches",
    "ClaimedOutbox",
    "Clock",
    "DeadLetters",
    "DueDeliveries",
    "EventMetrics",
    "Events",
    "Holds",
    "IdempotencyKeys",
    "InFlight",
    "Lease",
    "Ledger",
    "LedgerAudit",
    "Locks",
    "Outbox",
    "OutboxFeed",
    "Page",
    "PaymentFilter",
    "Payments",
    "Reads",
    "Reconciliations",
    "Refunds",
    "Resolver",
    "TaskQueue",
    "Tenants",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WebhookSender",
    "Webhooks",
]
