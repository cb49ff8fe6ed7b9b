"""Ordering and completeness under concurrency: hypothesis draws interleavings of many streams.

Each example: several message queues, each with its own token sequence; one driver issues the
publishes in a drawn global order, some awaited one by one and some fired together (so they
share flushes), or sent through a ``Publisher`` (no wait per frame) for the streams drawn to use
one, with drawn yields in between; consumers start before, during or after the
publishing, in raw or struct mode, on one relay or on a second relay (another "server process"
sharing the Redis), whose readers go back to Redis at once or once per millisecond. Every
consumer must get exactly its sequence, in order, then the terminal. Each runs on a single Redis
and on a Redis Cluster (``target_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from tests.relay.helpers import final, token
from tests.support.cluster import ClusterSet
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

_ids = itertools.count()


def _message_ids(prefix: str, n: int) -> list[str]:
    """``n`` message ids no earlier example used."""
    run = next(_ids)
    return [f"{prefix}{run}-{s}" for s in range(n)]


@contextlib.asynccontextmanager
async def _two_relays(url: str, read_interval: float) -> AsyncIterator[tuple[Relay, Relay]]:
    """Two relays on one Redis, as two server processes would have."""
    async with (
        Relay(url, read_interval=read_interval) as relay,
        Relay(url, read_interval=read_interval) as other,
    ):
        yield relay, other


@pytest.fixture(params=["single", "cluster"])
def target_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    """Where the relays run: the module's Redis, or the session's Redis Cluster (3 masters)."""
    if request.param == "cluster":
        cluster: ClusterSet = request.getfixturevalue("redis_cluster")
        return cluster.url
    return redis_server.url


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_streams = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(0, 25), min_size=n_streams, max_size=n_streams))
    steps = [s for s, n in enumerate(lengths) for _ in range(n)]
    order = draw(st.permutations(steps))
    fire = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    yields = draw(st.lists(st.integers(0, 2), min_size=len(order), max_size=len(order)))
    return {
        "lengths": lengths,
        "order": order,
        "fire": fire,
        "yields": yields,
        "start": draw(
            st.lists(st.sampled_from(["before", "middle", "after"]), min_size=n_streams, max_size=n_streams)
        ),
        "raw": draw(st.lists(st.booleans(), min_size=n_streams, max_size=n_streams)),
        "as_bytes": draw(st.lists(st.booleans(), min_size=n_streams, max_size=n_streams)),
        "other_relay": draw(st.lists(st.booleans(), min_size=n_streams, max_size=n_streams)),
        "via_publisher": draw(st.lists(st.booleans(), min_size=n_streams, max_size=n_streams)),
        "read_interval": draw(st.sampled_from([0.0, 0.001])),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=scenarios())
async def test_every_stream_gets_its_frames_once_in_order(target_url: str, sc: dict[str, Any]) -> None:
    lengths: list[int] = sc["lengths"]
    mids = _message_ids("hyp", len(lengths))
    async with _two_relays(target_url, sc["read_interval"]) as (relay, other):
        results: dict[int, list[Any]] = {}

        async def consume(s: int) -> None:
            r = other if sc["other_relay"][s] else relay
            results[s] = [m async for m in r.stream(mids[s], timeout=10, raw=sc["raw"][s])]

        def start(phase: str) -> list[asyncio.Task[None]]:
            return [asyncio.create_task(consume(s)) for s in range(len(lengths)) if sc["start"][s] == phase]

        def payload(s: int, i: int) -> inference.WorkerResponse | bytes:
            msg = token(i)
            return codec.worker_response.encode(msg) if sc["as_bytes"][s] else msg

        tasks = start("before")
        counters = [0] * len(lengths)
        fired: list[asyncio.Task[None]] = []
        via = sc["via_publisher"]
        pub = relay.publisher(limit=4)
        for k, s in enumerate(sc["order"]):
            if k == len(sc["order"]) // 2:
                tasks += start("middle")
            if via[s]:
                pub.send(mids[s], payload(s, counters[s]))
                if not sc["fire"][k]:
                    await pub.drain()
            else:
                t = asyncio.create_task(relay.publish(mids[s], payload(s, counters[s])))
                if sc["fire"][k]:
                    fired.append(t)
                else:
                    await t
            counters[s] += 1
            for _ in range(sc["yields"][k]):
                await asyncio.sleep(0)
        await asyncio.gather(*fired)
        for s, m in enumerate(mids):
            if via[s]:
                pub.send(m, final())
        await asyncio.gather(
            pub.flush(), *(relay.publish(m, final()) for s, m in enumerate(mids) if not via[s])
        )
        tasks += start("middle") if not sc["order"] else []
        tasks += start("after")
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

    for s, n in enumerate(lengths):
        expected: list[Any] = [token(i) for i in range(n)] + [final()]
        if sc["raw"][s]:
            expected = [codec.worker_response.encode(m) for m in expected]
        assert results[s] == expected, f"stream {s}"


@st.composite
def handovers(draw: st.DrawFn) -> dict[str, Any]:
    n_streams = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 30), min_size=n_streams, max_size=n_streams))
    return {
        "lengths": lengths,
        # how many items the first consumer takes before it stops (the rest goes back to Redis)
        "take": [draw(st.integers(0, n)) for n in lengths],
        # the second consumer: opened after the first has closed (on this relay or the other),
        # or while it is closing (on this relay: it must wait for the give-back)
        "reopen": draw(
            st.lists(
                st.sampled_from(["after-same", "after-other", "during-same"]),
                min_size=n_streams,
                max_size=n_streams,
            )
        ),
        "chunks": draw(st.lists(st.integers(1, 8), min_size=1, max_size=10)),
        "read_interval": draw(st.sampled_from([0.0, 0.001])),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=handovers())
async def test_a_stream_handed_over_mid_way_loses_and_reorders_nothing(
    target_url: str, sc: dict[str, Any]
) -> None:
    lengths: list[int] = sc["lengths"]
    mids = _message_ids("hand", len(lengths))
    async with _two_relays(target_url, sc["read_interval"]) as (relay, other):

        async def produce() -> None:
            # every stream's frames through one publisher, in drawn chunks, then the terminals
            pub = relay.publisher()
            sent = [0] * len(lengths)
            chunks = itertools.cycle(sc["chunks"])
            while any(sent[s] < n for s, n in enumerate(lengths)):
                for s, n in enumerate(lengths):
                    for _ in range(min(next(chunks), n - sent[s])):
                        pub.send(mids[s], token(sent[s]))
                        sent[s] += 1
                await pub.drain()
                await asyncio.sleep(0)
            for m in mids:
                pub.send(m, final())
            await pub.flush()

        async def consume(s: int) -> list[Any]:
            first = relay.stream(mids[s], timeout=10)
            got: list[Any] = []
            for _ in range(sc["take"][s]):
                got.append(await first.__anext__())
            mode = sc["reopen"][s]
            if mode == "during-same":
                closing = asyncio.ensure_future(first.aclose())
                await asyncio.sleep(0)  # the close has begun: the reopen must wait for it
                second = relay.stream(mids[s], timeout=10)
                got += [m async for m in second]
                await closing
            else:
                await first.aclose()
                r = relay if mode == "after-same" else other
                got += [m async for m in r.stream(mids[s], timeout=10)]
            return got

        consumers = [asyncio.create_task(consume(s)) for s in range(len(lengths))]
        await produce()
        results = await asyncio.wait_for(asyncio.gather(*consumers), timeout=30)

    for s, n in enumerate(lengths):
        assert results[s] == [*(token(i) for i in range(n)), final()], f"stream {s}"
