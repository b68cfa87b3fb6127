"""Redis adapters: the one client factory (one Redis, Sentinel, Cluster), locks, the rate limiter, cluster-wide
metrics and the readiness probe."""
