"""The worker's steps that must happen at once in Redis (Lua scripts): a run
is answered, or put back in the queue, only while the worker still holds it,
so a run whose worker was presumed dead (and re-queued by another) is never
answered twice."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

# KEYS: taken list, result key, stream key. ARGV: the run as queued, the
# result, its TTL in seconds (0: none), "1" when its text was streamed, the
# stream's last event ("done" or "error") and an error's text.
FINISH = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
if ARGV[4] == '1' then
  if ARGV[5] == 'error' then
    redis.call('XADD', KEYS[3], '*', 'event', 'error', 'data', ARGV[6])
  else
    redis.call('XADD', KEYS[3], '*', 'event', 'done')
  end
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
else
  redis.call('PUBLISH', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: taken list, queue. ARGV: the run as taken, the run as it goes back
# (RPUSH: it is the next one taken, as it waited longest).
REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""


class Scripts:
    def __init__(self, redis: Redis) -> None:
        # redis-py loads a script again if Redis restarted and forgot it.
        self.finish: AsyncScript = redis.register_script(FINISH)
        self.requeue: AsyncScript = redis.register_script(REQUEUE)
