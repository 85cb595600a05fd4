"""One Redis client per front or worker, from the file's connection keys."""

from __future__ import annotations

from redis.asyncio import Redis

from runtime.config.schema import RedisConnection


def redis_url(connection: RedisConnection) -> str:
    if connection.url:
        return connection.url
    scheme = "rediss" if connection.secure else "redis"
    return f"{scheme}://{connection.host}:{connection.port}"


def where(connection: RedisConnection) -> str:
    """Redis as messages name it: the address, never the password."""
    if connection.url:
        return connection.url.split("@")[-1].split("://")[-1]
    return f"{connection.host}:{connection.port}"


def connect(connection: RedisConnection) -> Redis:
    """A client (connections are opened on first use). Short connect and
    health-check timeouts so a Redis that is gone is an error, not a hang."""
    return Redis.from_url(
        redis_url(connection),
        db=connection.database,
        password=connection.password,
        decode_responses=False,
        socket_connect_timeout=5,
        health_check_interval=15,
    )
