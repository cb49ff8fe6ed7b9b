"""The chat's event stream across processes and across a browser that goes away.

What the reference does when a browser disconnects: sse-starlette cancels the event generator;
frames still in ``message:{id}`` stay there, and a browser that reconnects gets a new generator
that pops the rest (while the message is unfinished; after the end it gets 204). Here the server
also gives back frames it had taken from Redis but not sent: a second reader gets every frame
the first one was not sent, in order, and nothing the worker sends later is lost.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.inference_server.browser import ChatStreamResult
from tests.inference_server.conftest import MakeWorker
from tests.inference_server.harness import AppProcess, ChatApi, wait_until

OPEN_STREAMS = "oasst_open_event_streams"


def _open_streams(api: ChatApi) -> float:
    return api.metrics().value(OPEN_STREAMS)


def _read_in_background(api: ChatApi, chat_id: str, message_id: str) -> tuple[ThreadPoolExecutor, object]:
    pool = ThreadPoolExecutor(1)

    def read() -> ChatStreamResult:
        with api.events(chat_id, message_id) as stream:
            return stream.rest()

    return pool, pool.submit(read)


def test_a_reader_that_leaves_loses_nothing_to_the_next_reader(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """The first browser reads 3 tokens (all the worker sent so far) and leaves; the worker goes
    on; a second browser gets exactly the other 5 tokens and the final message."""
    worker = make_worker(app.url, tokens=8, pause_after_tokens=3)
    ex = api.exchange("read me twice")
    with api.events(ex.chat_id, ex.message_id) as first:
        for _ in range(3):
            first.until(lambda e: e.kind == "token")
        handled = worker.wait_for_requests(1)[0]
        assert handled.paused.wait(5)
    first_tokens = first.result.tokens
    assert first_tokens == handled.tokens  # all 3 sent, all 3 read
    # the server notices the browser left while it had nothing to send
    wait_until(lambda: _open_streams(api) == 0, what="the first stream to close")

    pool, second = _read_in_background(api, ex.chat_id, ex.message_id)
    with pool:
        wait_until(lambda: _open_streams(api) == 1, what="the second stream to open")
        worker.resume()
        result = second.result(timeout=15)  # type: ignore[attr-defined]

    assert handled.done.wait(5) and handled.outcome == "generated_text", handled.outcome
    assert first_tokens + result.tokens == handled.tokens, (first_tokens, result.kinds())
    final = result.final
    assert final is not None and final.kind == "message", result.kinds()
    assert final.chunk["message"]["content"] == handled.text
    assert api.message(ex.chat_id, ex.message_id)["state"] == "complete"


def test_a_reader_that_leaves_mid_flow_does_not_crash_the_server_or_lose_later_frames(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """The browser leaves after 2 tokens while the worker is still sending (a token every 10 ms, up
    to 20, then a pause): what the server had written to the dead connection is gone with it, and
    what it had taken from Redis but not written goes back; the second browser gets an unbroken run
    of tokens up to the last one and the final message, and the server serves on."""
    worker = make_worker(app.url, tokens=40, pause_after_tokens=20, delay=0.01)
    ex = api.exchange("leave early")
    with api.events(ex.chat_id, ex.message_id) as first:
        handled = worker.wait_for_requests(1)[0]
        first.until(lambda e: e.kind == "token")
        first.until(lambda e: e.kind == "token")
        assert handled.paused.wait(5)
    first_tokens = first.result.tokens
    wait_until(lambda: _open_streams(api) == 0, what="the first stream to close")

    pool, second = _read_in_background(api, ex.chat_id, ex.message_id)
    with pool:
        wait_until(lambda: _open_streams(api) == 1, what="the second stream to open")
        worker.resume()
        result = second.result(timeout=15)  # type: ignore[attr-defined]

    assert handled.done.wait(5) and handled.outcome == "generated_text"
    everything = handled.tokens
    assert everything[: len(first_tokens)] == first_tokens
    got = result.tokens
    assert got, result.kinds()
    start = everything.index(got[0])
    assert start >= len(first_tokens)
    assert got == everything[start:], "the second reader's tokens have a hole or are out of order"
    final = result.final
    assert final is not None and final.kind == "message", result.kinds()
    assert final.chunk["message"]["content"] == handled.text

    again = api.exchange("still serving")
    assert api.wait_finished(again.chat_id, again.message_id)["state"] == "complete"


def test_two_server_processes_worker_on_one_browser_on_the_other(
    two_apps: tuple[AppProcess, AppProcess], make_worker: MakeWorker
) -> None:
    """Worker on process A; chats created and streamed on process B, sharing one Redis."""
    worker_side, browser_side = two_apps
    api_b = ChatApi(browser_side.url)
    try:
        exchanges = [api_b.exchange(f"across{i}") for i in range(3)]
        ready = threading.Barrier(4, timeout=15)

        def browse(i: int) -> ChatStreamResult:
            with api_b.events(exchanges[i].chat_id, exchanges[i].message_id) as stream:
                stream.until(lambda e: e.kind == "pending")
                ready.wait()
                return stream.rest()

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(browse, i) for i in range(3)]
            ready.wait()
            worker = make_worker(worker_side.url, tokens=5, max_parallel_requests=2)
            results = [f.result(timeout=20) for f in futures]

        for i, result in enumerate(results):
            expected = [f"across{i}#{n} " for n in range(5)]
            assert result.tokens == expected, (i, result.kinds())
            assert result.final is not None and result.final.kind == "message", (i, result.kinds())
            assert result.final.chunk["message"]["content"] == "".join(expected)
            assert api_b.message(exchanges[i].chat_id, exchanges[i].message_id)["state"] == "complete"
        assert len(worker.wait_for_requests(3)) == 3

        # and the other way round: the chat on process A, read on B
        api_a = ChatApi(worker_side.url)
        try:
            ex = api_a.exchange("from a")
            done = api_b.wait_finished(ex.chat_id, ex.message_id)
            assert done["content"] == "".join(f"from a#{n} " for n in range(5)), done
        finally:
            api_a.close()
    finally:
        api_b.close()


def test_comment_pings_keep_a_quiet_stream_open_and_the_browser_skips_them(
    ping_app: AppProcess, make_worker: MakeWorker
) -> None:
    """While the worker is silent mid-answer the server sends comment pings (sse-starlette's
    ``: ping``; here every 0.2 s): the browser fails to parse them, logs and goes on, and the
    answer completes in that same stream."""
    app = ping_app
    api = ChatApi(app.url)
    try:
        worker = make_worker(app.url, tokens=4, pause_after_tokens=1)
        ex = api.exchange("take your time")
        with api.events(ex.chat_id, ex.message_id, read_timeout=5) as stream:
            stream.until(lambda e: e.kind == "token")
            for _ in range(2):
                comment = stream.until(lambda e: e.kind == "parse_error")
                assert set(comment.chunk) == {""}, comment.chunk  # a comment line, not broken data
            worker.resume()
            result = stream.rest()
        handled = worker.wait_for_requests(1)[0]
        assert result.tokens == handled.tokens, result.kinds()
        assert result.final is not None and result.final.kind == "message", result.kinds()
    finally:
        api.close()
