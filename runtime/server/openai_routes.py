"""The OpenAI-compatible API under /v1 (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
