"""`model-compose up` on a file whose controller is a queue subscriber and
has no HTTP server: the process loads its models and works the queue until
stopped (SIGINT/SIGTERM: running runs get the shutdown timeout, then go
back to the queue)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from redis.exceptions import RedisError

from runtime.config import ComposeConfig
from runtime.errors import ModelComposeError, QueueUnavailableError
from runtime.queue.worker import QueueWorker
from runtime.service import Service

Say = Callable[[str], None]


async def start_worker(service: Service) -> QueueWorker:
    """Start the file's queue worker on a started service; a Redis that
    cannot be reached is a QueueUnavailableError."""
    adapter = service.config.controller.subscriber
    assert adapter is not None
    worker = QueueWorker(service, adapter)
    try:
        await worker.start()
    except RedisError as error:
        await worker.redis.aclose()
        raise QueueUnavailableError(f"cannot reach Redis at {worker.where}: {error}") from None
    return worker


def ready_line(worker: QueueWorker) -> str:
    return (
        f"ready: queue worker {worker.worker_id} on Redis at {worker.where} "
        f"(queue '{worker.adapter.name}', workflows: {', '.join(worker.workflows)}; "
        f"{worker.slots} runs at once) (Ctrl-C to stop)"
    )


def serve_worker(config: ComposeConfig, say: Say) -> int:
    """Work the queue until stopped; the exit code."""

    async def main() -> int:
        service = Service(config, status=lambda message: say(f"{message}…"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        metrics = None
        try:
            await service.start()  # starts the worker too
        except ModelComposeError as error:
            say(f"error: {error}")
            await service.stop()
            return error.exit_code
        assert service.worker is not None
        say(ready_line(service.worker))
        adapter = config.controller.subscriber
        if adapter is not None and adapter.metrics_port is not None:
            from runtime.metrics import serve_metrics

            try:
                metrics = await serve_metrics(
                    service, adapter.metrics_host, adapter.metrics_port, config.controller.api_key
                )
            except ModelComposeError as error:  # its port is taken
                say(f"error: {error}")
                await service.stop()
                return error.exit_code
            say(f"metrics at {metrics.url}")
        await stop.wait()
        say("stopping: running runs get the shutdown timeout, then go back to the queue")
        if metrics is not None:
            await metrics.close()
        await service.stop()
        return 0

    return asyncio.run(main())
