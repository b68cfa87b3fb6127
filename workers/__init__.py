"""Dramatiq actors and the outbox relay (external payments, refunds, webhooks)."""
