"""What a server process is configured with (the command line builds one for every process)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_KEY = "dev-key"


@dataclass(frozen=True)
class Settings:
    """One server process's settings (the reference's names where it has one)."""

    redis_url: str
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    """Worker API keys (``X-API-Key``); with ``chat_auth``, also the chat routes' bearer tokens."""
    chat_auth: bool = False
    """The chat routes ask for ``Authorization: Bearer <one of api_keys>``."""
    worker_ping_interval: float = 3.0
    """Seconds between two pings to a worker (the reference's ``worker_ping_interval``)."""
    pending_event_interval: float = 1.0
    """Seconds between two ``pending`` events (the reference's ``pending_event_interval``)."""
    sse_ping_interval: float = 15.0
    """Seconds without an event before a comment ping (sse-starlette's default)."""
    sse_send_timeout: float = 30.0
    """Seconds one write to a browser may take before the stream is dropped."""
    stream_timeout: float = 60.0
    """Seconds an answer that has started may go without a token before its stream ends with an error."""
    message_queue_expire: int = 60
    work_queue_max_size: int | None = None
    gc_threshold: int = 10_000
    """The collector's first threshold (``gc.set_threshold``) once the app has started; 0: Python's."""
