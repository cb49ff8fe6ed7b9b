"""The reference server's Redis key names, and the check every id gets before it names a key."""

from __future__ import annotations

__all__ = ["REFERENCE_KEYS", "KeyLayout", "check_id", "message_queue_key", "work_queue_key"]


def message_queue_key(message_id: str) -> str:
    """The reference's per-message queue key: ``message:{message_id}``."""
    return f"message:{message_id}"


def work_queue_key(compat_hash: str) -> str:
    """The reference's work queue key: ``work:{compat_hash}``."""
    return f"work:{compat_hash}"


class KeyLayout:
    """The key names of one shard: the reference's with ``tag`` (a hash tag such as ``{r7}``, or
    "" for the reference's own names) in front of the id, so all of a shard's keys share a hash
    slot on a Redis Cluster (``_cluster``)."""

    __slots__ = ("tag",)

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def message(self, message_id: str) -> str:
        """A message's queue: ``message:{tag}{message_id}``."""
        return f"message:{self.tag}{message_id}"

    def work(self, compat_hash: str) -> str:
        """A work queue: ``work:{tag}{compat_hash}`` (its counters: ``ctr_enq:`` and
        ``ctr_deq:`` in front of that)."""
        return f"work:{self.tag}{compat_hash}"

    def position(self, message_id: str) -> str:
        """A queued message's position: ``pos:{tag}{message_id}``."""
        return f"pos:{self.tag}{message_id}"


REFERENCE_KEYS = KeyLayout()
"""The reference server's key names (a single Redis)."""


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
