"""PostgreSQL: the only room that imports asyncpg. Pool, named queries, migrations and the
repositories whose writes are compare-and-set transitions."""
