"""Frames and a plain redis-py client for the relay tests."""

from __future__ import annotations

import json
from typing import Any

from oasst_shared import codec
from oasst_shared.schemas import inference


def token(i: int, request_id: str = "req") -> inference.TokenResponse:
    """A token response whose text and token_id carry its sequence number."""
    return inference.TokenResponse(request_id=request_id, text=f" t{i}", log_prob=-0.5, token_id=i)


def token_frame(i: int, request_id: str = "req") -> bytes:
    """The JSON bytes of ``token(i)``, as a worker sends them."""
    return codec.worker_response.encode(token(i, request_id))


def final(request_id: str = "req") -> inference.GeneratedTextResponse:
    """A terminal response (``generated_text``)."""
    return inference.GeneratedTextResponse(request_id=request_id, text="done", finish_reason="eos_token")


def reference_token_json(i: int) -> str:
    """A token document as the reference server's pydantic ``response.json()`` writes it."""
    doc: dict[str, Any] = {
        "request_id": "req",
        "response_type": "token",
        "text": f" t{i}",
        "log_prob": -0.5,
        "token_id": i,
    }
    return json.dumps(doc)
