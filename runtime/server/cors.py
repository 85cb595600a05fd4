"""Which web pages may call the API from a browser (CORS), from the
adapter's `origins`.

Without `origins`, only pages served from this machine (localhost,
127.0.0.1, [::1], any port) may: a page on another site cannot read the
API's answers, key or no key (as Ollama). `origins: "*"` lets every page
in, and `model-compose up` warns about it.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

LOOPBACK_ORIGINS = r"https?://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?"


def origins_list(origins: Any) -> list[str]:
    """`origins` as a list or a comma-separated string."""
    if isinstance(origins, str):
        return [o.strip() for o in origins.split(",") if o.strip()]
    return [str(o) for o in origins]


def allows_any_origin(origins: str | list[str] | None) -> bool:
    return origins is not None and "*" in origins_list(origins)


def cors_middleware(app: ASGIApp, origins: str | list[str] | None) -> CORSMiddleware:
    """CORS for the adapter's `origins`; credentials (cookies) only with a
    list, never with `*` or the loopback default (the API takes its key in a
    header, which needs none)."""
    if origins is None:
        return CORSMiddleware(
            app, allow_origin_regex=LOOPBACK_ORIGINS, allow_methods=["*"], allow_headers=["*"]
        )
    listed = origins_list(origins)
    return CORSMiddleware(
        app,
        allow_origins=listed,
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials="*" not in listed,
    )
