"""The test servers (tests/servers.py) answer: a fresh PostgreSQL database and Redis on loopback."""

import psycopg2, redis
from urllib.parse import urlsplit

def test_pg(postgres_db):
    c = psycopg2.connect(host=postgres_db.host, port=postgres_db.port, user=postgres_db.username, dbname=postgres_db.db_name)
    with c.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchone() == (1,)

def test_redis(redis_url):
    assert redis.Redis.from_url(redis_url).ping()
