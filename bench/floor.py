"""The floor (issue 12): a bare Sanic + asyncpg app doing the API's transfer as ONE database call.

    .venv/bin/python bench/floor.py --database-url postgresql://root@127.0.0.1:5432/DB --port 8099

It answers POST /api/v1/transfers with the API's JSON body ({"source_account_id", "destination_account_id",
"amount", "currency"}) by one call of bench_floor_transfer() (bench/floor.sql: lock both accounts in id order,
check, update both balances, insert both hash-chained entries) and a minimal 201 JSON. Nothing else: no auth, no
Idempotency-Key, no payment row, no events or outbox, no metrics, no tracing, no logging beyond errors. It runs
like `payments serve` by default: one Sanic process (single_process), uvloop, access log off, and an asyncpg
pool of PAYMENTS_DATABASE_POOL_MAX connections (the API's default when unset) opened lazily (min 0, as
app/bootstrap.py does) and reset on release as the API's is. bench/run.py starts it next to the API and loads
both with the same clients, so that "API / floor" is what the API's layers cost over the database's own work.

GET /health/ready answers 200 once the pool is open, as the API's does, so that bench/run.py waits for both alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import json as json_response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import DatabaseSettings  # noqa: E402 - after the path is set, when run as a script
from core.errors import CoreError  # noqa: E402
from core.ids import new_id  # noqa: E402
from core.money import check_currency, parse_amount  # noqa: E402

FLOOR_SQL = ROOT / "bench" / "floor.sql"
TRANSFER = "SELECT bench_floor_transfer($1, $2, $3, $4, $5, $6, $7)"
#: The function's SQLSTATEs (bench/floor.sql) and the statuses the API answers for the same errors.
STATUSES = {"P0002": 404, "23514": 422, "22023": 422, "55000": 409}

log = logging.getLogger("floor")


def pool_size() -> int:
    """PAYMENTS_DATABASE_POOL_MAX, else the API's default (app/settings.py), so that both get as many connections."""
    value = os.environ.get("PAYMENTS_DATABASE_POOL_MAX")
    return int(value) if value else DatabaseSettings().pool_max


def problem(status: int, detail: str) -> HTTPResponse:
    return json_response({"status": status, "detail": detail}, status=status)


async def reset(conn: asyncpg.Connection) -> None:
    """The API's pool reset (adapters/postgres/pool.py): nothing unless a transaction was left open. asyncpg's
    default sends four statements on every release, one round trip more per transfer than the API pays."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def create_app(database_url: str, pool_max: int) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic("floor", configure_logging=False)
    app.config.KEEP_ALIVE_TIMEOUT = 60

    @app.before_server_start
    async def open_pool(app: Sanic[Any, Any]) -> None:
        # The function is (re)created here so that the floor runs on any migrated database, not only bench/run.py's.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(FLOOR_SQL.read_text())
        finally:
            await conn.close()
        app.ctx.pool = await asyncpg.create_pool(database_url, min_size=0, max_size=pool_max, reset=reset,
                                                 max_inactive_connection_lifetime=60)  # as the API's pool

    @app.after_server_stop
    async def close_pool(app: Sanic[Any, Any]) -> None:
        await app.ctx.pool.close()

    @app.get("/health/ready")
    async def ready(request: Request) -> HTTPResponse:
        return json_response({"status": "ok"})

    @app.post("/api/v1/transfers")
    async def transfer(request: Request) -> HTTPResponse:
        try:
            body = json.loads(request.body, parse_float=Decimal)  # exact numbers, as the API reads them
            source, destination = UUID(body["source_account_id"]), UUID(body["destination_account_id"])
            currency = check_currency(body["currency"])
            minor = parse_amount(body["amount"], currency).minor
        except (ValueError, KeyError, TypeError, CoreError) as error:
            return problem(422, f"invalid body: {error}")
        posting = new_id()
        try:
            at = await request.app.ctx.pool.fetchval(TRANSFER, source, destination, minor, currency, posting,
                                                     new_id(), new_id())
        except asyncpg.PostgresError as error:
            status = STATUSES.get(error.sqlstate or "")
            if status is None:
                log.error("transfer failed: %r", error)
                return problem(503, "the database refused the transfer")
            return problem(status, str(error))
        return json_response({"posting_id": str(posting), "status": "completed", "created_at": at.isoformat()},
                             status=201)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a migrated database (bench/run.py's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--pool-max", type=int, default=0, help="default: PAYMENTS_DATABASE_POOL_MAX or the API's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server"):
        logging.getLogger(name).setLevel(logging.ERROR)
    app = create_app(args.database_url, args.pool_max or pool_size())
    app.prepare(host=args.host, port=args.port, workers=1, access_log=False, motd=False, single_process=True)
    Sanic.serve_single(primary=app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
