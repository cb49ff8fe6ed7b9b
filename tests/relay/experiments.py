"""Streams under faults, counted: N streams x M tokens published through one relay and read
through it while Redis is restarted or fails over, each stream judged on what it got.

A stream either completes (every token once, in order, then the final response) or ends with a
typed error after an in-order prefix of its tokens. The counts the relay promises: 0 silent holes
(a stream that completes without one of its tokens), 0 duplicates, 0 reorders.

Used by ``test_relay_failover.py`` and ``test_relay_cluster_failover.py`` (small, in ``make
test``) and ``soak_relay.py`` (``make soak``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from oasst_shared.relay import Relay, RelayDataLossError, RelayError
from oasst_shared.relay._cluster import cluster_tags, shard_of
from oasst_shared.schemas import inference
from tests.relay.helpers import final, token
from tests.support.cluster import ClusterSet


@dataclass
class Outcome:
    """What the streams of one run got."""

    complete: int = 0
    ended_with: Counter[str] = field(default_factory=Counter)  # error class name -> streams
    silent_holes: int = 0
    holes_before_error: int = 0  # a stream that ended with an error showed a gap before it
    duplicates: int = 0
    reorders: int = 0
    publish_errors: Counter[str] = field(default_factory=Counter)
    fault_to_first_publish: float | None = None  # seconds from the fault to a publish that landed

    def add(self, other: Outcome) -> None:
        self.complete += other.complete
        self.ended_with.update(other.ended_with)
        self.silent_holes += other.silent_holes
        self.holes_before_error += other.holes_before_error
        self.duplicates += other.duplicates
        self.reorders += other.reorders
        self.publish_errors.update(other.publish_errors)

    @property
    def data_loss(self) -> int:
        return self.ended_with["RelayDataLossError"]


def judge(got: list[inference.WorkerResponse], tokens: int, completed: bool, outcome: Outcome) -> None:
    ids = [r.token_id for r in got if isinstance(r, inference.TokenResponse)]
    outcome.duplicates += len(ids) - len(set(ids))
    outcome.reorders += sum(1 for a, b in itertools.pairwise(ids) if b < a)
    if completed:
        if ids != list(range(tokens)):
            outcome.silent_holes += 1
        else:
            outcome.complete += 1
    elif ids != list(range(len(ids))):
        outcome.holes_before_error += 1


async def read_and_judge(relay: Relay, mid: str, tokens: int, timeout: float, outcome: Outcome) -> None:
    """Read ``mid``'s stream to its end and judge it into ``outcome`` (an error ends it typed)."""
    got: list[inference.WorkerResponse] = []
    try:
        async for item in relay.stream(mid, timeout=timeout):
            got.append(item)
    except RelayError as exc:
        outcome.ended_with[type(exc).__name__] += 1
        judge(got, tokens, False, outcome)
        return
    judge(got, tokens, True, outcome)


async def run_streams(
    relay: Relay,
    *,
    streams: int,
    tokens: int,
    faults: list[Callable[[], Awaitable[None]]],
    prefix: str,
    rate: float = 20_000.0,
    stream_timeout: float = 20.0,
) -> Outcome:
    """Publish ``streams`` x ``tokens`` at about ``rate`` tokens/s in all, running each fault of
    ``faults`` when that fraction of the tokens has been published; read and judge every stream.
    A producer whose publish fails stops (as a worker handler aborts the message)."""
    outcome = Outcome()
    producing = streams  # producers still publishing
    fault_at: list[float] = []
    landed_after_fault: list[float] = []
    published = 0
    total = streams * tokens
    marks = [int(total * (i + 1) / (len(faults) + 1)) for i in range(len(faults))]

    async def consume(mid: str) -> None:
        await read_and_judge(relay, mid, tokens, stream_timeout, outcome)

    async def produce(j: int) -> None:
        nonlocal published, producing
        mid = f"{prefix}{j}"
        gap = streams / rate
        try:
            for i in range(tokens):
                await relay.publish(mid, token(i, mid))
                published += 1
                if fault_at and not landed_after_fault:
                    landed_after_fault.append(time.monotonic())
                await asyncio.sleep(gap)
            await relay.publish(mid, final(mid))
        except RelayError as exc:
            outcome.publish_errors[type(exc).__name__] += 1
        finally:
            producing -= 1

    async def inject() -> None:
        for mark, fault in zip(marks, faults, strict=True):
            while published < mark and producing:  # (producers that failed stop publishing)
                await asyncio.sleep(0.005)
            if not producing:
                return
            fault_at.append(time.monotonic())
            await fault()

    consumers = [asyncio.create_task(consume(f"{prefix}{j}")) for j in range(streams)]
    await asyncio.sleep(0.1)
    await asyncio.gather(inject(), *(produce(j) for j in range(streams)))
    await asyncio.gather(*consumers)
    if fault_at and landed_after_fault:
        outcome.fault_to_first_publish = landed_after_fault[0] - fault_at[0]
    return outcome


def check(outcome: Outcome, streams: int) -> None:
    """The relay's promise, whatever the fault did: no silent hole, duplicate or reorder, and
    every stream accounted for (complete or ended with a typed error)."""
    assert outcome.silent_holes == 0, outcome
    assert outcome.holes_before_error == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert outcome.reorders == 0, outcome
    assert outcome.complete + sum(outcome.ended_with.values()) == streams, outcome


async def cluster_failover(
    cluster: ClusterSet, *, streams: int, tokens: int, rate: float, kill_at: float = 1 / 3
) -> tuple[Outcome, Outcome, float, bool]:
    """``streams`` x ``tokens`` through one relay on ``cluster``, read through a second; the master
    owning the most shards is SIGKILLed once ``kill_at`` of the tokens are published. The
    outcomes of the streams on the killed master's shards and of the others, the seconds from
    the kill until the cluster had promoted its replica, and whether a stream opened afterwards
    on the promoted master's shards got everything. A producer whose publish fails stops (as a
    worker handler aborts)."""
    async with (
        Relay(cluster.url, retry_timeout=15) as writer,
        Relay(cluster.url, retry_timeout=15) as reader,
    ):
        tags = cluster_tags(writer.cluster_shards)
        owner = {t: cluster.node_for_slot(cluster.key_slot(t)) for t in tags}
        victim = Counter(owner.values()).most_common(1)[0][0]
        mids = [f"failover-{j}" for j in range(streams)]
        on_victim = {m for m in mids if owner[tags[shard_of(m, writer.cluster_shards)]] is victim}
        affected, spared = Outcome(), Outcome()
        published = 0

        async def consume(mid: str) -> None:
            await read_and_judge(reader, mid, tokens, 20, affected if mid in on_victim else spared)

        async def produce(mid: str) -> None:
            nonlocal published
            try:
                for i in range(tokens):
                    await writer.publish(mid, token(i, mid))
                    published += 1
                    await asyncio.sleep(streams / rate)
                await writer.publish(mid, final(mid))
            except RelayError as exc:
                (affected if mid in on_victim else spared).publish_errors[type(exc).__name__] += 1

        async def kill() -> float:
            while published < streams * tokens * kill_at:
                await asyncio.sleep(0.005)
            cluster.kill_master(victim)
            return await asyncio.to_thread(cluster.wait_failover, victim)

        consumers = [asyncio.create_task(consume(m)) for m in mids]
        await asyncio.sleep(0.1)
        failover, *_ = await asyncio.gather(kill(), *(produce(m) for m in mids))
        await asyncio.wait_for(asyncio.gather(*consumers), 60)
        # the relays go on: a new stream on a shard of the promoted master gets everything
        mid = next(
            f"after-{j}"
            for j in range(10_000)
            if owner[tags[shard_of(f"after-{j}", writer.cluster_shards)]] is victim
        )
        for i in range(20):
            await writer.publish(mid, token(i))
        await writer.publish(mid, final())
        after = [m async for m in reader.stream(mid, timeout=15)]
        judge(after, 20, True, affected_after := Outcome())
    return affected, spared, failover, affected_after.complete == 1


__all__ = ["Outcome", "RelayDataLossError", "check", "cluster_failover", "judge", "run_streams"]
