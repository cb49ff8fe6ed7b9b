"""A one-line progress display on a terminal (``\\r``-rewritten, throttled)."""

from __future__ import annotations

import time
from typing import Final, TextIO

__all__ = ["LARGE_INPUT_BYTES", "Progress"]

LARGE_INPUT_BYTES: Final = 16 << 20
"""Inputs from this size on show progress (when the stream is a terminal)."""


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.2f} GiB"


class Progress:
    """Shows ``bytes read / total (percent), messages`` on ``stream``, a few times a second.

    Draws only when ``enabled``; the first update that reaches ``threshold`` bytes of a large
    input draws at once, later ones at most every ``interval`` seconds. ``clear()`` erases the
    line (before other output to the same terminal, and at the end).
    """

    def __init__(
        self,
        stream: TextIO,
        total: int | None,
        *,
        enabled: bool,
        threshold: int = LARGE_INPUT_BYTES,
        interval: float = 0.25,
    ) -> None:
        self._stream = stream
        self._total = total
        self._enabled = enabled and (total is None or total >= threshold)
        self._threshold = threshold
        self._interval = interval
        self._next_draw = 0.0
        self._drawn = False

    def update(self, done: int, messages: int) -> None:
        """Show ``done`` bytes read and ``messages`` read so far (if enabled and due)."""
        if not self._enabled or (self._total is None and done < self._threshold):
            return
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + self._interval
        if self._total:
            text = f"{_size(done)} / {_size(self._total)} ({100 * done / self._total:.0f}%)"
        else:
            text = f"{_size(done)} read"
        self._stream.write(f"\r\x1b[K{text}, {messages:,} messages")
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the progress line if one is shown; a later ``update`` draws it again."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
