"""``DrainWire``: how the reader's drains go over its connection, with the backup that makes a
lost reply lose nothing.

A drain is one ``EVALSHA`` of the DRAIN script (``_scripts``) over a set of keys. Each drain also
keeps what it popped in the reader's own list (``relay:inflight:{uuid}``, tagged with the round's
id, replaced by the next round). From the moment a drain is sent until its reply is read, its
fate is unknown (``unacked``): if the connection fails then, the reader calls ``recover`` after
reconnecting, which reads the backup back and returns those frames, but only if that round ran
(the id matches; otherwise the backup is an earlier round's, already delivered).

The reader is handed a wire (``Reader(..., wire=...)``): the seam for another way of draining,
as the design measurements in ``benchmarks/relay_designs.py`` use.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Final, NamedTuple

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from oasst_shared.relay._link import NETWORK_ERRORS, bulk, pack
from oasst_shared.relay._scripts import DRAIN, Script

__all__ = ["DRAIN_PER_KEY", "DrainWire", "ScanView"]

DRAIN_PER_KEY: Final = 4096
"""Most frames one drain pops from one key."""


class ScanView(NamedTuple):
    """The packed drain of every open stream's key, valid for one stream set."""

    version: int  # of the stream set
    keys: list[bytes]
    scan: bytes  # the drain of every key (``command``)


class DrainWire:
    """Packs, sends and reads the reader's drains; keeps the round ids and the backup's key.

    ``backup_expire``: seconds the backup list lives after a drain wrote it; ``tag``: the hash
    tag of the reader's shard (its backup and doorbell keys are in the shard's slot, ``_cluster``).
    """

    def __init__(self, backup_expire: int, tag: str = "") -> None:
        self._script = Script(DRAIN)
        self._backup_expire = backup_expire
        self.reader_id = tag + uuid.uuid4().hex
        """The reader's own id, in its backup's and its doorbell's keys."""
        self.backup_key = f"relay:inflight:{self.reader_id}".encode()
        """The reader's backup list."""
        self._round_id = 0
        self._unacked: int | None = None  # the round sent whose reply has not been read

    @property
    def unacked(self) -> bool:
        """Whether a drain was sent and its reply not read (its fate unknown)."""
        return self._unacked is not None

    def command(self, keys: list[bytes], body: bytes, nhot: int) -> bytes:
        """A drain of ``keys`` (``body``: them as RESP bulk strings; the first ``nhot`` popped,
        the rest scanned), packed up to its last two arguments, which ``send`` adds."""
        n = len(keys)
        head = (b"*%d\r\n" % (n + 8), self._script.head, bulk(b"%d" % (n + 1)), bulk(self.backup_key))
        return b"".join((*head, body, bulk(b"%d" % DRAIN_PER_KEY), bulk(b"%d" % nhot)))

    def scan_view(self, keys: list[bytes], body: bytes, version: int) -> ScanView:
        """The drain of every key of a stream set (``version``)."""
        return ScanView(version, keys, self.command(keys, body, 0))

    async def send(self, conn: AbstractConnection, cmd: bytes, tail: bytes = b"", head: bytes = b"") -> None:
        """Send ``head``, a drain (``command``) with the next round id, then ``tail``, pipelined."""
        self._round_id += 1
        self._unacked = self._round_id
        last = bulk(b"%d" % self._round_id) + bulk(b"%d" % self._backup_expire)
        await conn.send_packed_command(b"".join((head, cmd, last, tail)), check_health=False)

    async def read(self, conn: AbstractConnection) -> list[Any] | None:
        """A drain's reply: [index1, frames1, index2, frames2, ...] for the keys that had frames
        (1-based indexes into its keys), or an error in place of frames (negative index)."""
        reply: list[Any] | None = await conn.read_response(disable_decoding=True)
        self._unacked = None
        return reply

    async def recover(self, conn: AbstractConnection) -> list[tuple[bytes, list[bytes]]]:
        """After a drain's reply was lost: the frames it popped, by key in order, if it ran."""
        await conn.send_packed_command(pack(("LRANGE", self.backup_key, 0, -1)), check_health=False)
        saved = await conn.read_response(disable_decoding=True)
        round_id, self._unacked = self._unacked, None
        if not saved or int(saved[0]) != round_id:
            return []  # it did not run (the backup is an earlier round's, already delivered)
        out: list[tuple[bytes, list[bytes]]] = []
        i = 1
        while i + 1 < len(saved):
            count = int(saved[i + 1])
            out.append((bytes(saved[i]), list(saved[i + 2 : i + 2 + count])))
            i += 2 + count
        return out

    async def load(self, conn: AbstractConnection, *others: str) -> None:
        """Load the script (and ``others``) on a new connection, so that its rounds do not get
        NOSCRIPT."""
        try:
            for source in (DRAIN, *others):
                await conn.send_packed_command(pack(("SCRIPT", "LOAD", source)), check_health=False)
                await conn.read_response(disable_decoding=True)
        except ResponseError:
            pass  # SCRIPT not allowed: the round gets NOSCRIPT and says so
        except (*NETWORK_ERRORS, RedisError):
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def client_id(self, conn: AbstractConnection) -> bytes | None:
        """This connection's client id (for CLIENT UNBLOCK), or None where CLIENT is not allowed
        (the reader then polls with short BLPOP timeouts)."""
        try:
            await conn.send_packed_command(pack(("CLIENT", "ID")), check_health=False)
            reply = await conn.read_response(disable_decoding=True)
        except (*NETWORK_ERRORS, RedisError):
            return None
        return str(reply).encode()
