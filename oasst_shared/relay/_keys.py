"""The reference server's Redis key names, and the check every id gets before it names a key."""

from __future__ import annotations

__all__ = ["check_id", "message_queue_key", "work_queue_key"]


def message_queue_key(message_id: str) -> str:
    """The reference's per-message queue key: ``message:{message_id}``."""
    return f"message:{message_id}"


def work_queue_key(compat_hash: str) -> str:
    """The reference's work queue key: ``work:{compat_hash}``."""
    return f"work:{compat_hash}"


def check_id(name: str, value: object) -> str:
    """``value`` if it is a non-empty str that UTF-8 encodes (a key name), else ``ValueError``
    naming the parameter ``name``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} cannot be encoded as UTF-8 ({exc.reason}): {value!r}") from None
    return value
