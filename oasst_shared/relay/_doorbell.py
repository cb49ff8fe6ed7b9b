"""The reader's doorbell: how it learns which of its streams got frames without naming them all.

A reader registers each stream it reads: ``relay:reader:{message_id}`` holds the reader's id,
expiring after ``ttl`` seconds and refreshed every ``ttl / 3``. The publish script, which already
runs once per flush, looks each pushed queue's registration up and pushes the queue's key onto
that reader's doorbell list, ``relay:bell:{reader id}`` (expiring too). An idle reader blocks on
its doorbell alone (``BLPOP``, one key), so its wait costs the same with 20 or 20,000 open
streams, and a busy one pops the doorbell (``LPOP``) behind each drain.

The doorbell is a hint, never the data: a key it names is drained only if the reader still
reads it (a stale registration, a paused stream: ignored), and frames that rang no bell (pushed by
a reference server process, or whose doorbell entry was lost with a connection) are found by the
reader's periodic scan of every key (``scan_every``).
"""

from __future__ import annotations

import time
from typing import Final

from oasst_shared.relay._link import bulk
from oasst_shared.relay._scripts import REGISTER

__all__ = ["BELL_BATCH", "Doorbell", "registration_key"]

BELL_BATCH: Final = 4096
"""Most doorbell entries one round pops."""
_MESSAGE_PREFIX: Final = b"message:"


def registration_key(message_key: bytes) -> bytes:
    """``relay:reader:{message_id}`` for ``message:{message_id}``."""
    return b"relay:reader:" + message_key[len(_MESSAGE_PREFIX) :]


class Doorbell:
    """A reader's registrations and its doorbell list. ``reader_id``: its own id; ``ttl``: the
    registrations' and the doorbell's expiry, in seconds."""

    def __init__(self, reader_id: str, ttl: int) -> None:
        self.key = f"relay:bell:{reader_id}".encode()
        self._id = reader_id.encode()
        self._ttl = ttl
        self._eval = bulk(b"EVAL") + bulk(REGISTER.encode())  # rare and small: no SHA to load
        self._to_set: dict[bytes, None] = {}
        self._to_delete: dict[bytes, None] = {}
        self._refresh_at = 0.0
        self.rung: dict[bytes, None] = {}
        """Queue keys the doorbell named since the last round drained them."""
        self._pop = b"*3\r\n$4\r\nLPOP\r\n" + bulk(self.key) + bulk(b"%d" % BELL_BATCH)

    def register(self, key: bytes) -> None:
        self._to_delete.pop(key, None)
        self._to_set[key] = None

    def unregister(self, key: bytes) -> None:
        self._to_set.pop(key, None)
        self._to_delete[key] = None

    def refresh_now(self) -> None:
        """Register every active key in the next round (after a reconnection: the server may
        have lost the registrations)."""
        self._refresh_at = 0.0

    def command(self, active: dict[bytes, None]) -> bytes:
        """The REGISTER call a round sends first (b"" when nothing is due): pending registrations
        and deletions, or every active key when the refresh is due. ``EVAL``, not ``EVALSHA``: it
        is sent on opens and refreshes only, and a round stays one ``EVALSHA`` (its drain)."""
        now = time.monotonic()
        if now >= self._refresh_at:
            self._refresh_at = now + self._ttl / 3
            self._to_set = dict.fromkeys(active)
        if not self._to_set and not self._to_delete:
            return b""
        keys = [registration_key(k) for k in (*self._to_set, *self._to_delete)]
        args = [bulk(k) for k in keys]
        head = b"*%d\r\n" % (len(keys) + 6) + self._eval + bulk(b"%d" % len(keys))
        tail = bulk(self._id) + bulk(b"%d" % self._ttl) + bulk(b"%d" % len(self._to_set))
        self._to_set, self._to_delete = {}, {}
        return b"".join((head, *args, tail))

    def pop_command(self) -> bytes:
        """``LPOP`` the doorbell (what a round sends last)."""
        return self._pop

    def wait_command(self, timeout: float) -> bytes:
        """``BLPOP`` the doorbell: the idle reader's one-key wait."""
        t = repr(float(max(timeout, 0.001))).encode()
        return b"*3\r\n$5\r\nBLPOP\r\n" + bulk(self.key) + bulk(t)

    def popped(self, reply: object) -> None:
        """Note the keys an ``LPOP`` (a list) or a ``BLPOP`` ([bell, key]) of the doorbell gave."""
        if not isinstance(reply, list):
            return
        if len(reply) == 2 and reply[0] == self.key:
            reply = reply[1:]
        rung = self.rung
        for key in reply:
            if isinstance(key, bytes):
                rung[key] = None
