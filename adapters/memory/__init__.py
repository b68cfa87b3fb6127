"""In-memory implementations of every port; they pass the same contract suite as the real ones."""

from adapters.memory.audit import InMemoryLedgerAudit
from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork

__all__ = ["InMemoryLedgerAudit", "InMemoryStore", "InMemoryUnitOfWork"]
