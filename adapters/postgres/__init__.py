"""PostgreSQL adapters over asyncpg: pool, unit of work, one repository module per aggregate."""
