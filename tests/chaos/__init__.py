"""Fault injection: the stack on a PostgreSQL and a Redis of its own, under a mixed load, broken one way at a time
(see docs/reliability.md). `make chaos` runs every scenario in full; `make test` runs a short version."""
