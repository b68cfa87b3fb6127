"""Thin route modules: parse, call one use case, serialise."""
