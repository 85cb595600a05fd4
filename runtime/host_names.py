"""Host names as a Host header and `allowed_hosts` write them: which name
loopback, which patterns are valid, which match. No server here, so the
config checks use it too (runtime.server.hosts is the check itself)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# A host name (labels of letters, digits, `-` and `_`), optionally `*.` before
# it for every name under a domain, as TrustedHostMiddleware writes them.
_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets)
    is this machine's loopback: localhost, *.localhost (browsers resolve
    those themselves, never through DNS), 127.0.0.0/8, ::1."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def host_pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be an `allowed_hosts` entry, or None when it can:
    `*` (any Host), a name, `*.` and a domain, or an IP address."""
    if pattern == "*" or _NAME.fullmatch(pattern.lower()):
        return None
    try:
        ipaddress.ip_address(pattern.removeprefix("[").removesuffix("]"))
        return None
    except ValueError:
        return (
            f"'{pattern}' is not a host name: write a name like my.box.lan, *.box.lan "
            "for every name under a domain, an IP address, or * for any, without a "
            "scheme, port or path"
        )


def request_host(header: str) -> str | None:
    """The host a Host header names, lowercased, without its port and IPv6
    brackets; None when the header is not a host (and port)."""
    try:
        parts = urlsplit(f"//{header}")
        parts.port  # noqa: B018 - raises ValueError on a port that is not one
    except ValueError:
        return None
    if parts.hostname is None or parts.netloc != header or "@" in header:
        return None
    host = parts.hostname.rstrip(".")
    if header.startswith("[") or (_NAME.fullmatch(host) and not host.startswith("*")):
        return host
    return None


def matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().removeprefix("[").removesuffix("]")
    if pattern == "*" or host == pattern:
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])
