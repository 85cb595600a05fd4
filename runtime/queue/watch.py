"""Queue depths for /metrics, looked at every few seconds (a scrape cannot
wait on Redis: collectors are synchronous)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtime.queue.wire import QueueKeys

EVERY = 2.0


async def watch_depths(redis: Redis, keys: QueueKeys, depths: dict[str, int]) -> None:
    """Update `depths` (workflow id → runs waiting) in place, for ever."""
    while True:
        workflows = list(depths)
        if workflows:
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for workflow_id in workflows:
                        pipe.llen(keys.queue(workflow_id))
                    lengths = await pipe.execute()
                depths.update(zip(workflows, lengths, strict=True))
            except RedisError:
                pass  # the runs themselves report a Redis that is gone
        await asyncio.sleep(EVERY)
