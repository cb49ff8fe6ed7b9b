"""The README's worker websocket handler against a real Redis: a worker's frames reach only the
messages its connection dispatched; a frame naming another chat's message (or a request of
another connection) never reaches that chat, and is logged without its text."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from tests.package.test_readme import Block, code_blocks, run_block
from tests.support.redis_server import running_redis
from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(60)

RUN_MAIN = "asyncio.run(main())\n"


def relay_block() -> Block:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in code_blocks(text, "README.md") if "async def worker_websocket" in b.code]
    return block


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


@pytest.fixture(scope="module")
def worker_websocket() -> Callable[..., Any]:
    """The README's handler, its block run without its last line (which runs the demo)."""
    block = relay_block()
    assert block.code.endswith(RUN_MAIN)
    namespace = run_block(Block(block.path, block.line, block.info, block.code.removesuffix(RUN_MAIN)))
    handler = namespace["worker_websocket"]
    assert callable(handler)
    return handler


def token(request_id: str, text: str, i: int) -> bytes:
    return codec.worker_response.encode(
        inference.TokenResponse.new(request_id=request_id, text=text, token_id=i)
    )


def test_frames_reach_only_the_messages_this_connection_dispatched(
    worker_websocket: Callable[..., Any], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker_websocket")
    ours, victim = f"msg-{uuid.uuid4().hex[:8]}", f"msg-{uuid.uuid4().hex[:8]}"
    our_request, victims_request = str(uuid.uuid4()), str(uuid.uuid4())  # the latter: another connection's
    dispatched = {our_request: ours}
    end = inference.GeneratedTextResponse.new(request_id=our_request, text=" a b", finish_reason="length")
    own = [token(our_request, " a", 0), token(our_request, " b", 1), codec.worker_response.encode(end)]
    frames = [
        own[0],
        token(victim, " SECRET-BY-MESSAGE", 7),  # names the victim's message id as its request
        token(victims_request, " SECRET-BY-REQUEST", 7),  # a request another connection dispatched
        b'{"response_type": "token", "text": " SECRET-NO-REQUEST", "token_id": 7}',
        b'{"response_type": "token", "request_id": "x", "text": " SECRET-BROKEN',
        own[1],
        own[2],
        token(our_request, " SECRET-AFTER-THE-END", 8),  # the request is over
    ]

    async def from_worker() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    async def run() -> tuple[int, list[bytes], list[bytes]]:
        async with Relay(redis_url) as relay:
            forwarded = await worker_websocket(relay, dispatched, from_worker())
            got = [f async for f in relay.stream(ours, raw=True, timeout=5)]
            async with relay.subscribe(victim) as sub:
                stolen = await sub.next_batch(0.3)
            async with relay.subscribe(victims_request) as sub:
                stolen += await sub.next_batch(0.3)
            async with relay.subscribe(ours) as sub:
                late = await sub.next_batch(0.3)
        return forwarded, got, stolen + late

    forwarded, got, elsewhere = asyncio.run(run())
    assert got == own and forwarded == 3  # our chat: exactly our frames, the same bytes, in order
    assert elsewhere == []  # nothing reached the victim's queue, nor ours after the end
    assert dispatched == {}  # the finished request is forgotten
    records = [r for r in caplog.records if r.name == "worker_websocket"]
    assert len(records) == 5 and {r.levelno for r in records} == {logging.WARNING}
    assert not [r.getMessage() for r in records if "SECRET" in r.getMessage()]


def test_the_readme_relay_example_prints_what_it_did(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OASST_REDIS_URL", redis_url)
    monkeypatch.chdir(REPO_ROOT)
    run_block(relay_block())
    forwarded, received = capsys.readouterr().out.splitlines()
    assert forwarded.startswith("worker connection: forwarded 4 frames to message:msg-")
    assert received.endswith(
        "got 4 events, 'Sequoias are tall'; chat " + forwarded.rsplit(" ", 1)[1] + " got none"
    )
