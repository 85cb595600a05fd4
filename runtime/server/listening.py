"""Binding a server's socket before it serves, for every server of the
process (the API, the Web UI, a worker's metrics)."""

from __future__ import annotations

import socket

from runtime.errors import RuntimeFailure


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything loads, so a busy port is one clear error (uvicorn
    would exit with a traceback, after starting to load the models)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RuntimeFailure(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock
