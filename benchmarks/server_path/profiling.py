"""What the server's CPU per token goes to, per variant: cProfile on the measured process.

``python -m benchmarks.server_path.profiling [--chats K] [--tokens N] [--phase P] [VARIANT ...]``
runs each variant's server under ``cProfile`` (its default wall clock: a CPU-time clock costs a
system call per reading and distorts more), drives one load phase through it, and prints the
self time of each part of the stack per token, leaving out the time blocked in ``epoll``. The
profiler slows Python calls more than C calls, so shares are approximate and totals are higher
than the unprofiled benchmark's; on a busy machine, time the process waited for a core counts
where it was preempted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.server_path import run as runner

TOTAL = "total (the whole server run, connection set-up included, epoll left out)"
IDLE = "epoll (waiting: left out of the total)"

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("socket send/recv (syscalls)", ("'_socket.socket' objects", "method 'recv", "method 'send")),
    (IDLE, ("select.epoll",)),
    ("relay (oasst_shared.relay)", ("oasst_shared/relay",)),
    ("redis-py + hiredis", ("/redis/", "hiredis")),
    (
        "codec (msgspec, pydantic, views)",
        (
            "oasst_shared/codec",
            "msgspec",
            "pydantic",
            "oasst_compat",
            "SchemaValidator",
            "SchemaSerializer",
            "model_dump_json",
        ),
    ),
    ("benchmark server (websocket parse, SSE, corking)", ("benchmarks/server_path",)),
    ("asyncio (event loop, tasks, futures, streams)", ("asyncio", "_asyncio", "_contextvars", "call_soon")),
)


def category(file: str, name: str) -> str:
    where = f"{file}:{name}"
    for label, needles in CATEGORIES:
        if any(n in where for n in needles):
            return label
    return "other (builtins, bytes, dicts, ...)"


def serve_profiled(variant: str, redis_url: str, out: str) -> None:
    """Run the server of ``variant`` under cProfile (CPU clock) until SIGTERM; dump to ``out``."""
    from benchmarks.server_path import server
    from benchmarks.server_path.load import raise_fd_limit

    raise_fd_limit()
    prof = cProfile.Profile()
    prof.enable()
    try:
        asyncio.run(server.serve(variant, redis_url))
    finally:
        prof.disable()
        prof.dump_stats(out)


def breakdown(stats_file: str, tokens: int) -> dict[str, float]:
    """Self CPU time per category, in microseconds per token."""
    stats = pstats.Stats(stats_file)
    totals: dict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    for (file, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        totals[category(file, name)] += tottime
    return {k: v / tokens * 1e6 for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def profile_variant(variant: str, redis_url: str, settings: runner.Settings, phase: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "server.prof")
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server_path.profiling", "--serve", variant, redis_url, out],
            cwd=runner.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("PORT "):
                raise RuntimeError(f"profiled server {variant} did not start")
            port = int(line.split()[1])
            result = runner.run_load(port, port, redis_url, settings, (phase,))[0]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        if not result["ok"]:
            raise RuntimeError(f"{variant}: tokens lost or reordered: {result['error_samples']}")
        parts = breakdown(out, result["tokens"])
        parts[TOTAL] = sum(v for k, v in parts.items() if k != IDLE)
        return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_path.profiling", description=__doc__)
    parser.add_argument("--serve", nargs=3, metavar=("VARIANT", "REDIS_URL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--chats", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--phase", default="flood", help="flood or a rate in tokens/s")
    parser.add_argument(
        "variants",
        nargs="*",
        default=[name for name, _ in runner.VARIANTS],
        help="e.g. views relay asgi-relay",
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve_profiled(*args.serve)
        return
    from tests.support.redis_server import running_redis

    settings = runner.Settings(chats=args.chats, tokens=args.tokens, phases=(), short_phases=())
    results: dict[str, dict[str, float]] = {}
    with running_redis() as srv:
        for variant in args.variants:
            runner._flush(srv.url)
            results[variant] = profile_variant(variant, srv.url, settings, args.phase)
    labels = [label for label, _ in CATEGORIES] + ["other (builtins, bytes, dicts, ...)"]
    print(
        f"Server self CPU time per token (us), cProfile, {args.chats} chats x {args.tokens} tokens, "
        f"phase {args.phase}:"
    )
    print()
    print("| part | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for label in labels:
        print(f"| {label} | " + " | ".join(f"{r.get(label, 0.0):.1f}" for r in results.values()) + " |")
    print(f"| {TOTAL} | " + " | ".join(f"{r[TOTAL]:.1f}" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
