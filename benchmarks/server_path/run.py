"""Run every variant against one embedded Redis, then the relay across two server processes."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

VARIANTS: tuple[tuple[str, str], ...] = (
    ("floor", "floor: websocket -> in-process queue -> SSE, no Redis"),
    ("views", "(a) per message, Pydantic v2 views (the reference's pattern)"),
    ("structs", "(b) per message, structs (oasst_shared.codec)"),
    ("relay", "(c) oasst_shared.relay (group commit, batched reads, raw frames)"),
)
"""The measured variants, on the raw asyncio server (``server.py``): every phase, and the goals."""

ASGI_VARIANTS: tuple[tuple[str, str], ...] = (
    ("asgi-floor", "floor on uvicorn + Starlette"),
    ("asgi-views", "(a) on uvicorn + Starlette"),
    ("asgi-relay", "(c) on uvicorn + Starlette"),
    ("asgi-app", "the example server (examples/inference_server: FastAPI, its own endpoints)"),
)
"""The same handlers on uvicorn + Starlette (``asgi.py``), the short phases only: the framework's cost."""
TARGET_RATE = 20_000.0
MID_RATE = 10_000.0
LOW_RATE = 5_000.0
GOAL_CPU_RATIO = 10.0
GOAL_TOKENS_PER_CORE = 40_000.0
GOAL_P99_MS = 10.0
GOAL_APP_FLOOR_RATIO = 1.2
GOAL_APP_VS_A = 20.0
CLUSTER_MASTERS = 3
GOAL_CLUSTER_CPU_RATIO = 2.0
GOAL_CLUSTER_NODE_SPREAD = 1.5


@dataclass(frozen=True)
class Settings:
    """Size of a run."""

    chats: int
    tokens: int
    phases: tuple[str, ...]
    short_phases: tuple[str, ...]
    """Saturation and the target load: the two-server run and the ASGI rows."""

    @classmethod
    def of(cls, quick: bool) -> Settings:
        phases = ("flood", str(int(TARGET_RATE)), str(int(MID_RATE)), str(int(LOW_RATE)))
        if quick:
            return cls(chats=32, tokens=50, phases=phases, short_phases=phases[:2])
        return cls(chats=256, tokens=200, phases=phases, short_phases=phases[:2])


def relay_available() -> str | None:
    """None if ``oasst_shared.relay`` imports, else why not."""
    try:
        from oasst_shared.relay import Relay  # noqa: F401
    except ImportError as exc:
        return f"oasst_shared.relay is not importable ({exc})"
    return None


@contextmanager
def server_process(variant: str, redis_url: str) -> Iterator[int]:
    """A measured server process of ``variant``; yields its port."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server_path.server", variant, redis_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("PORT "):
                proc.wait(timeout=10)
                err.seek(0)
                raise RuntimeError(f"server {variant} did not start: {err.read().decode()[-2000:]}")
            yield int(line.split()[1])
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def run_load(
    worker_port: int,
    browser_port: int,
    redis_url: str,
    s: Settings,
    phases: tuple[str, ...],
    *,
    cpu_urls: list[str] | None = None,
) -> Any:
    """One load process over ``phases``; returns its per-phase results. ``cpu_urls``: the Redis
    nodes whose CPU it reads (a cluster's masters; default ``redis_url``)."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.server_path.load",
        f"--worker-port={worker_port}",
        f"--browser-port={browser_port}",
        *(f"--redis={url}" for url in cpu_urls or [redis_url]),
        f"--chats={s.chats}",
        f"--tokens={s.tokens}",
        *(f"--phase={p}" for p in phases),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"load process failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout)


def run_app_load(port: int, redis_url: str, s: Settings, phases: tuple[str, ...]) -> Any:
    """The example server's load process (``app_load.py``: chats, workers and browsers through the
    app's own endpoints) over ``phases``; returns its per-phase results."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.server_path.app_load",
        f"--port={port}",
        f"--redis={redis_url}",
        f"--chats={s.chats}",
        f"--tokens={s.tokens}",
        *(f"--phase={p}" for p in phases),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"app load process failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout)


def _flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def run_benchmark(quick: bool = False, progress: bool = False) -> dict[str, Any]:
    """Every variant, one after the other against one Redis, then the two-server relay run."""
    from tests.support.redis_server import running_redis

    s = Settings.of(quick)
    results: dict[str, Any] = {
        "settings": {"chats": s.chats, "tokens": s.tokens, "phases": list(s.phases), "quick": quick},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
            "nice": os.nice(0),
            "uvicorn": _uvicorn_stack_label(),
        },
        "variants": {},
    }
    missing_relay = relay_available()
    started = time.perf_counter()
    with running_redis() as srv:
        results["machine"]["redis"] = srv.url.split("://")[0]
        for name, phase_list in [(n, s.phases) for n, _ in VARIANTS] + [
            (n, s.short_phases) for n, _ in ASGI_VARIANTS
        ]:
            if name.endswith("relay") and missing_relay:
                results["variants"][name] = {"unavailable": missing_relay}
                continue
            if progress:
                print(f"  {name} ...", file=sys.stderr, flush=True)
            _flush(srv.url)
            with server_process(name, srv.url) as port:
                if name == "asgi-app":
                    phases = run_app_load(port, srv.url, s, phase_list)
                else:
                    phases = run_load(port, port, srv.url, s, phase_list)
            results["variants"][name] = {"phases": {p["phase"]: p for p in phases}}
        if missing_relay:
            results["two_servers"] = {"unavailable": missing_relay}
        else:
            if progress:
                print("  relay across two server processes ...", file=sys.stderr, flush=True)
            _flush(srv.url)
            with server_process("relay", srv.url) as a, server_process("relay", srv.url) as b:
                phases = run_load(a, b, srv.url, s, s.short_phases)
            results["two_servers"] = {"phases": {p["phase"]: p for p in phases}}
    results["cluster"] = {"unavailable": missing_relay} if missing_relay else run_cluster(s, progress)
    results["seconds"] = time.perf_counter() - started
    results["machine"]["loadavg_after"] = os.getloadavg()
    results["goals"] = goals(results)
    return results


def run_cluster(s: Settings, progress: bool) -> dict[str, Any]:
    """The relay variant on a Redis Cluster of ``CLUSTER_MASTERS`` masters (no replicas: the
    single-node relay it is compared with has none), each node's CPU read."""
    from tests.support.cluster import running_cluster

    if progress:
        print(f"  relay on a Redis Cluster ({CLUSTER_MASTERS} masters) ...", file=sys.stderr, flush=True)
    with running_cluster(masters=CLUSTER_MASTERS, replicas_per_master=0) as cluster:
        urls = [node.url for node in cluster.masters()]
        with server_process("relay", cluster.url) as port:
            phases = run_load(port, port, cluster.url, s, s.short_phases, cpu_urls=urls)
    return {"masters": len(urls), "phases": {p["phase"]: p for p in phases}}


def _uvicorn_stack_label() -> str:
    """The uvicorn stack of this run (``asgi.STACKS``), for the report."""
    from benchmarks.server_path.asgi import STACKS, uvicorn_stack

    name = uvicorn_stack()
    stack = STACKS[name]
    return f"{stack['http']} + {stack['ws']}, {stack['loop']} (OASST_BENCH_UVICORN={name})"


def _phase(results: dict[str, Any], variant: str, phase: str) -> dict[str, Any] | None:
    v = results["variants"].get(variant, {})
    p: dict[str, Any] | None = v.get("phases", {}).get(phase)
    return p


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three goals, each with the measured figure and met or not."""
    rate = str(int(TARGET_RATE))
    out: list[dict[str, Any]] = []
    a = _phase(results, "views", "flood")
    c = _phase(results, "relay", "flood")
    floor = _phase(results, "floor", "flood")
    c_rate = _phase(results, "relay", rate)
    a_rate = _phase(results, "views", rate)
    ratio = a["server_cpu_us_per_token"] / c["server_cpu_us_per_token"] if a and c else math.nan
    measured = f"{ratio:.1f}x" if a and c else "not run"
    if a and c:
        measured += f" ({a['server_cpu_us_per_token']:.1f} vs {c['server_cpu_us_per_token']:.1f} us)"
        if floor:
            f_cpu = floor["server_cpu_us_per_token"]
            above = (a["server_cpu_us_per_token"] - f_cpu) / max(c["server_cpu_us_per_token"] - f_cpu, 1e-9)
            measured += f"; above the floor {above:.1f}x"
        if a_rate and c_rate:
            a_cpu, c_cpu = a_rate["server_cpu_us_per_token"], c_rate["server_cpu_us_per_token"]
            measured += f"; at {TARGET_RATE:,.0f} tok/s offered {a_cpu / c_cpu:.1f}x"
            floor_rate = _phase(results, "floor", rate)
            if floor_rate:
                # one frame per read and one event per write: the transport's own cost per token
                f_cpu = floor_rate["server_cpu_us_per_token"]
                measured += (
                    f" (above that load's floor of {f_cpu:.1f} us: "
                    f"{a_cpu - f_cpu:.1f} vs {c_cpu - f_cpu:.1f} us)"
                )
    out.append(
        {
            "goal": f"(c) uses >= {GOAL_CPU_RATIO:g}x less server CPU per token than (a) (saturation)",
            "measured": measured,
            "met": ratio >= GOAL_CPU_RATIO,
        }
    )
    per_core = 1e6 / c["server_cpu_us_per_token"] if c else math.nan
    out.append(
        {
            "goal": f">= {GOAL_TOKENS_PER_CORE:,.0f} tokens/s per server core ((c), saturation)",
            "measured": f"{per_core:,.0f} tokens per server CPU-second",
            "met": per_core >= GOAL_TOKENS_PER_CORE,
        }
    )
    if c_rate:
        p99 = c_rate["latency_ms_p99"]
        achieved = c_rate["achieved_tps"]
        sustained = achieved >= 0.95 * TARGET_RATE
        out.append(
            {
                "goal": f"(c) p99 latency <= {GOAL_P99_MS:g} ms at {TARGET_RATE:,.0f} tokens/s offered",
                "measured": f"p99 {p99:.2f} ms, {achieved:,.0f} tokens/s achieved",
                "met": p99 <= GOAL_P99_MS and sustained,
            }
        )
    else:
        out.append({"goal": "(c) p99 latency", "measured": "not run", "met": False})
    out += app_goals(results)
    out += cluster_goals(results)
    two = results.get("two_servers", {}).get("phases")
    if two:
        ok = all(p["ok"] for p in two.values())
        delivered = sum(p["tokens_delivered_in_order"] for p in two.values())
        expected = sum(p["tokens"] for p in two.values())
        out.append(
            {
                "goal": "(c) across two server processes: every token delivered once, in order",
                "measured": f"{delivered:,} of {expected:,} tokens in order, "
                f"{sum(p['errors'] for p in two.values())} errors",
                "met": ok,
            }
        )
    return out


def app_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The example server's two goals: near the uvicorn floor at the target load, far below (a)
    on uvicorn at saturation."""
    rate = str(int(TARGET_RATE))
    app_rate, floor_rate = _phase(results, "asgi-app", rate), _phase(results, "asgi-floor", rate)
    app_sat, a_sat = _phase(results, "asgi-app", "flood"), _phase(results, "asgi-views", "flood")
    out: list[dict[str, Any]] = []
    if app_rate and floor_rate:
        app_cpu, floor_cpu = app_rate["server_cpu_us_per_token"], floor_rate["server_cpu_us_per_token"]
        ratio = app_cpu / floor_cpu
        measured = (
            f"{ratio:.2f}x ({app_cpu:.1f} vs {floor_cpu:.1f} us; p50 {app_rate['latency_ms_p50']:.2f} ms, "
            f"p99 {app_rate['latency_ms_p99']:.2f} ms)"
        )
    else:
        ratio, measured = math.nan, "not run"
    out.append(
        {
            "goal": f"the example server within {GOAL_APP_FLOOR_RATIO:g}x of the uvicorn floor's server CPU "
            f"per token at {TARGET_RATE:,.0f} tokens/s offered",
            "measured": measured,
            "met": ratio <= GOAL_APP_FLOOR_RATIO,
        }
    )
    floor_sat = _phase(results, "asgi-floor", "flood")
    if app_sat and a_sat:
        app_cpu, a_cpu = app_sat["server_cpu_us_per_token"], a_sat["server_cpu_us_per_token"]
        ratio = a_cpu / app_cpu
        measured = f"{ratio:.1f}x ({a_cpu:.1f} vs {app_cpu:.1f} us)"
        if floor_sat:
            # the bound: a server that cost nothing above uvicorn + Starlette's own per-frame work
            bound = a_cpu / floor_sat["server_cpu_us_per_token"]
            measured += f"; the uvicorn floor itself: {bound:.1f}x"
    else:
        ratio, measured = math.nan, "not run"
    out.append(
        {
            "goal": f"the example server uses >= {GOAL_APP_VS_A:g}x less server CPU per token than (a) on "
            "uvicorn (saturation)",
            "measured": measured,
            "met": ratio >= GOAL_APP_VS_A,
        }
    )
    return out


def node_spread(phase: dict[str, Any]) -> float:
    """The busiest Redis node's CPU over the least busy one's."""
    nodes = phase["redis_cpu_us_per_token_by_node"]
    return max(nodes) / min(nodes) if nodes and min(nodes) > 0 else math.inf


def cluster_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The relay on a Redis Cluster: server CPU near the single-node relay's, the nodes' CPU
    even, every token once in order."""
    phases = results.get("cluster", {}).get("phases")
    if not phases:
        return [{"goal": "(c) on a Redis Cluster", "measured": "not run", "met": False}]
    ratios, spreads = [], []
    for name, p in phases.items():
        single = _phase(results, "relay", name)
        if single:
            ratios.append((name, p["server_cpu_us_per_token"] / single["server_cpu_us_per_token"]))
        spreads.append((name, node_spread(p)))
    label = {"flood": "saturation"}
    delivered = sum(p["tokens_delivered_in_order"] for p in phases.values())
    expected = sum(p["tokens"] for p in phases.values())
    return [
        {
            "goal": f"(c) on a Redis Cluster: server CPU per token within {GOAL_CLUSTER_CPU_RATIO:g}x of "
            "the single-node relay's",
            "measured": ", ".join(f"{label.get(n, n + ' tok/s')} {r:.2f}x" for n, r in ratios) or "not run",
            "met": bool(ratios) and all(r <= GOAL_CLUSTER_CPU_RATIO for _, r in ratios),
        },
        {
            "goal": f"(c) on a Redis Cluster: the nodes' Redis CPU within {GOAL_CLUSTER_NODE_SPREAD:g}x of "
            "each other",
            "measured": ", ".join(f"{label.get(n, n + ' tok/s')} {r:.2f}x" for n, r in spreads),
            "met": all(r <= GOAL_CLUSTER_NODE_SPREAD for _, r in spreads),
        },
        {
            "goal": "(c) on a Redis Cluster: every token delivered once, in order",
            "measured": f"{delivered:,} of {expected:,} tokens in order, "
            f"{sum(p['errors'] for p in phases.values())} errors",
            "met": all(p["ok"] for p in phases.values()),
        },
    ]


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def cluster_markdown(results: dict[str, Any]) -> list[str]:
    """The cluster run's table: per phase, server and Redis CPU against the single-node relay's,
    and each node's share."""
    cl = results.get("cluster", {})
    if "phases" not in cl:
        return ["", f"Relay on a Redis Cluster: not run ({cl.get('unavailable', 'no result')})."]
    lines = [
        "",
        f"Relay on a Redis Cluster ({cl['masters']} masters on this machine's cores, no replicas; one server "
        "process), against the single-node relay of this run:",
        "",
        "| phase | server CPU per token | single-node | Redis CPU per token (sum) | single-node | "
        "per node | busiest / least | tokens/s | p50 | p99 | in order |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in cl["phases"].items():
        single = _phase(results, "relay", name) or {}
        nodes = " / ".join(f"{x:.1f}" for x in p["redis_cpu_us_per_token_by_node"])
        lat = (
            ("-", "-")
            if p["offered_tps"] is None
            else (
                f"{p['latency_ms_p50']:.2f} ms",
                f"{p['latency_ms_p99']:.2f} ms",
            )
        )
        what = "saturation" if name == "flood" else f"{name} tok/s"
        lines.append(
            f"| {what} | {p['server_cpu_us_per_token']:.1f} us | "
            f"{_fmt(single.get('server_cpu_us_per_token'), '.1f')} us | "
            f"{p['redis_cpu_us_per_token']:.1f} us | "
            f"{_fmt(single.get('redis_cpu_us_per_token'), '.1f')} us | {nodes} us | {node_spread(p):.2f}x | "
            f"{_fmt(p['achieved_tps'])} | {lat[0]} | {lat[1]} | {'yes' if p['ok'] else 'NO'} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The report: the variants at saturation and at fixed offered loads, the goals, two servers."""
    st = results["settings"]
    lines = [
        f"### Inference server token path end to end ({st['chats']} chats x {st['tokens']} tokens"
        f"{', quick' if st['quick'] else ''})",
        "",
        "Server CPU: the measured server process's CPU time (user + system) over a phase, per token. "
        "Saturation: every worker writes all its frames at once; tokens/s = tokens received per second "
        "between the first and the last receipt (wall clock), on a machine shared with Redis and the "
        "load process. Above floor: server CPU minus the floor variant's (what the path through "
        "Redis itself costs). Latency: from a worker's write to its browser's receipt. Other work: "
        "CPU the rest of the machine used meanwhile (/proc/stat, to about 0.1 core).",
        "",
        "| variant | server CPU per token | above floor | Redis CPU per token | tokens/s | "
        "tokens per server CPU-second | other work on the machine | all in order |",
        "|---|---|---|---|---|---|---|---|",
    ]
    floor = _phase(results, "floor", "flood")
    for name, label in VARIANTS + ASGI_VARIANTS:
        v = results["variants"].get(name, {})
        if "unavailable" in v:
            lines.append(f"| {label} | not run: {v['unavailable']} | | | | | | |")
            continue
        sat = _phase(results, name, "flood")
        if sat is None:
            continue
        ok = all(p["ok"] for p in v["phases"].values())
        cpu = sat["server_cpu_us_per_token"]
        above = "-"
        if floor is not None and name != "floor":
            above = f"{cpu - floor['server_cpu_us_per_token']:.1f} us"
        lines.append(
            f"| {label} | {cpu:.1f} us | {above} | {sat['redis_cpu_us_per_token']:.1f} us | "
            f"{_fmt(sat['achieved_tps'])} | {_fmt(1e6 / cpu)} | {sat['others_cores']:.2f} cores | "
            f"{'yes' if ok else 'NO'} |"
        )
    lines += [
        "",
        "At a fixed offered load (all chats together; each chat's tokens evenly spaced):",
        "",
        "| variant | offered tok/s | achieved tok/s | server CPU per token | Redis CPU per token | "
        "p50 | p99 | max | other work on the machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in VARIANTS + ASGI_VARIANTS:
        for phase in st["phases"]:
            p = _phase(results, name, phase)
            if p is None or p["offered_tps"] is None:
                continue
            lines.append(
                f"| {label} | {p['offered_tps']:,.0f} | {_fmt(p['achieved_tps'])} | "
                f"{p['server_cpu_us_per_token']:.1f} us | {p['redis_cpu_us_per_token']:.1f} us | "
                f"{p['latency_ms_p50']:.2f} ms | {p['latency_ms_p99']:.2f} ms | "
                f"{p['latency_ms_max']:.2f} ms | {p['others_cores']:.2f} cores |"
            )
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for g in results["goals"]:
        lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |")
    two = results.get("two_servers", {})
    if "phases" in two:
        lines += [
            "",
            "Relay across two server processes (workers on one, browsers on the other; CPU summed):",
            "",
        ]
        for p in two["phases"].values():
            if p["offered_tps"] is None:
                what, lat = "saturation", ""
            else:
                what = f"offered {p['offered_tps']:,.0f} tok/s"
                lat = f", p50 {p['latency_ms_p50']:.2f} ms, p99 {p['latency_ms_p99']:.2f} ms"
            split = " + ".join(f"{x * 1e6 / p['tokens']:.1f}" for x in p["server_cpu_seconds"])
            lines.append(
                f"- {what}: {p['tokens_delivered_in_order']:,} of {p['tokens']:,} tokens delivered in "
                f"order, {p['errors']} errors; {_fmt(p['achieved_tps'])} tok/s{lat}; server CPU "
                f"{p['server_cpu_us_per_token']:.1f} us/token ({split})"
            )
    elif "unavailable" in two:
        lines += ["", f"Relay across two server processes: not run ({two['unavailable']})."]
    lines += cluster_markdown(results)
    m = results["machine"]
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, niceness {m['nice']}, load average before "
        f"{m['loadavg_before'][0]:.2f}, after {m['loadavg_after'][0]:.2f}; "
        f"the uvicorn rows on {m.get('uvicorn', 'h11 + websockets-sansio, asyncio')}; "
        f"run took {results['seconds']:.0f} s.",
    ]
    return "\n".join(lines)
