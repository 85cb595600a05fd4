"""One subscription connection for all of a front's waiting runs: each run
listens on its own result channel (model-compose's workers PUBLISH there),
and one reader hands each message to the run that waits for it. A
connection per waiting run (model-compose's way) would hold hundreds of
connections under load (redis-py's pool stops at 100)."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# How long a subscription may take to be confirmed before Redis counts as gone.
CONFIRM = 10.0


class Subscription:
    """A run's result channel: its messages, or the error that ended them."""

    def __init__(self, channel: bytes) -> None:
        self.channel = channel
        self.messages: asyncio.Queue[bytes | RedisError] = asyncio.Queue()
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def next(self, timeout: float) -> bytes | None:
        """The next message within `timeout` seconds, else None; raises the
        Redis error that cut the connection."""
        try:
            message = await asyncio.wait_for(self.messages.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(message, RedisError):
            raise message
        return message


class Results:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pubsub = redis.pubsub()
        self.subscriptions: dict[bytes, Subscription] = {}
        self.reader: asyncio.Task[None] | None = None
        # A broken connection's close, kept so it is not collected mid-way.
        self.closing: asyncio.Future[None] | None = None
        # Subscribe and unsubscribe commands are written one at a time.
        self.writing = asyncio.Lock()

    async def subscribe(self, channel: str) -> Subscription:
        """Listen on `channel`; returns once Redis confirmed it (a run may be
        answered as soon as it is queued)."""
        subscription = Subscription(channel.encode())
        self.subscriptions[subscription.channel] = subscription
        try:
            async with self.writing:
                await self.pubsub.subscribe(channel)
            if self.reader is None or self.reader.done():
                self.reader = asyncio.create_task(self._read(), name="queue:results")
            await asyncio.wait_for(asyncio.shield(subscription.confirmed), CONFIRM)
        except BaseException:
            self.subscriptions.pop(subscription.channel, None)
            raise
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        if self.subscriptions.pop(subscription.channel, None) is None:
            return
        try:
            async with self.writing:
                await self.pubsub.unsubscribe(subscription.channel)
        except RedisError as error:
            logger.debug("unsubscribe: %s", error)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.pubsub.aclose()

    async def _read(self) -> None:
        while self.subscriptions:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except RedisError as error:
                self._fail(error)
                return
            if message is None:
                continue
            subscription = self.subscriptions.get(message["channel"])
            if subscription is None:
                continue
            if message["type"] == "subscribe" and not subscription.confirmed.done():
                subscription.confirmed.set_result(None)
            elif message["type"] == "message":
                subscription.messages.put_nowait(message["data"])

    def _fail(self, error: RedisError) -> None:
        """The connection broke: every waiting run gets the error, and the
        next run starts on a new connection."""
        for subscription in self.subscriptions.values():
            subscription.messages.put_nowait(error)
            if not subscription.confirmed.done():
                subscription.confirmed.set_exception(error)
                subscription.confirmed.exception()  # retrieved: it may have no waiter
        self.subscriptions.clear()
        broken, self.pubsub = self.pubsub, self.redis.pubsub()
        self.closing = asyncio.ensure_future(broken.aclose())
