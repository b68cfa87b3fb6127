"""Driven adapters: PostgreSQL, Redis, in-memory fakes and the embedded servers."""
