"""The `payments` command: the entry points that start the HTTP API, the worker and the operators' tools; and
`payments.client`, the typed Python client of the API."""
