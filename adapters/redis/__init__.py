"""Redis adapters: rate limiting (and, later, locks and caches)."""
