"""The HTTP driver: the Sanic app, one declaration per operation, problem+json errors, auth, docs."""
