"""The worker websocket ``/workers/work`` as the reference's ``routes/workers.py``: the handshake
headers, what a refused worker is sent, and what happens to a chat when its worker fails."""

from __future__ import annotations

import json
from typing import Any

import redis

from oasst_shared import codec
from oasst_shared.schemas import inference
from tests.inference_server.conftest import MakeWorker
from tests.inference_server.harness import API_KEYS, AppProcess, ChatApi, wait_until
from tests.inference_server.worker import LOREM_CONFIG, PROTOCOL_VERSION, hardware_info, metrics_info
from tests.support.redis_server import RedisServer

REFUSALS = [
    # (case, X-API-Key, X-Protocol-Version, what the worker is sent)
    ("wrong key", "not-a-key", PROTOCOL_VERSION, inference.WrongApiKeyRequest),
    ("no key", None, PROTOCOL_VERSION, inference.WrongApiKeyRequest),
    ("old protocol", API_KEYS[0], "0", inference.UpgradeProtocolRequest),
    ("no protocol", API_KEYS[0], None, inference.UpgradeProtocolRequest),
    # the reference checks the protocol version before the key
    ("both wrong", "not-a-key", "0", inference.UpgradeProtocolRequest),
]


def test_a_refused_worker_is_told_why_then_closed(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """Each refusal on one app: the worker gets the one request (``WrongApiKeyRequest`` or
    ``UpgradeProtocolRequest``), then a close websocket-client accepts, and no work; the chat
    waiting meanwhile goes to the next worker with a good key."""
    for case, api_key, protocol_version, expected in REFUSALS:
        waiting = api.exchange(f"nobody may take this ({case})")
        refused = make_worker(app.url, api_key=api_key, protocol_version=protocol_version)
        refused.wait_closed()
        assert len(refused.frames) == 1, (case, refused.frames)  # the one request, nothing else
        request = codec.worker_request.decode(refused.frames[0])
        assert type(request) is expected, (case, refused.frames)
        assert refused.handled == [], case
        assert refused.end is not None and not refused.end.startswith("protocol error"), (case, refused.end)
        if refused.close_code is not None:  # a code websocket-client accepts (RFC 6455 7.4.1)
            assert refused.close_code in (1000, 1001, 1002, 1003, 1007, 1008, 1011) or (
                3000 <= refused.close_code < 5000
            ), (case, refused.close_code)
        assert api.metrics().value("oasst_connected_workers") == 0, case
        # the chat's work is still queued: a worker with a good key gets it
        good = make_worker(app.url, tokens=2)
        content = good.wait_for_requests(1)[0].request["thread"]["messages"][-1]["content"]
        assert content == f"nobody may take this ({case})"
        assert api.wait_finished(waiting.chat_id, waiting.message_id)["state"] == "complete", case
        good.close()
        wait_until(lambda: api.metrics().value("oasst_connected_workers") == 0, what="the good worker gone")


def test_every_configured_api_key_is_accepted(app: AppProcess, api: ChatApi, make_worker: MakeWorker) -> None:
    for key in API_KEYS:
        worker = make_worker(app.url, api_key=key, tokens=1)
        ex = api.exchange(f"for {key}")
        assert worker.wait_for_requests(1)[0].request["thread"]["messages"][-1]["content"] == f"for {key}"
        assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
        worker.close()
        assert worker.control == [], worker.control


def test_a_worker_that_disconnects_mid_message_ends_the_stream_with_an_error(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    ex = api.exchange("crash on me")
    with api.events(ex.chat_id, ex.message_id) as stream:
        stream.until(lambda e: e.kind == "pending")
        worker = make_worker(app.url, tokens=6, crash_after_tokens=3)
        result = stream.rest()
        trailing = stream.body_ends()  # after the error the server ends the body (bounded read)

    handled = worker.wait_for_requests(1)[0]
    assert handled.done.wait(5) and handled.outcome == "crashed"
    assert result.tokens == handled.tokens and len(handled.tokens) == 3, result.kinds()
    final = result.final
    assert final is not None and final.kind == "error", result.kinds()
    assert isinstance(final.chunk["error"], str) and final.chunk["error"], final.chunk
    assert final.chunk["message"]["id"] == ex.message_id, final.chunk
    assert final.chunk["message"]["state"] == "aborted_by_worker", final.chunk
    assert b"data:" not in trailing, trailing
    assert api.message(ex.chat_id, ex.message_id)["state"] == "aborted_by_worker"

    # the server goes on: another worker serves another chat
    make_worker(app.url, tokens=2)
    again = api.exchange("still there?")
    assert api.wait_finished(again.chat_id, again.message_id)["state"] == "complete"


def test_work_a_worker_dropped_before_its_first_token_goes_to_the_next_worker(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """The reference resets a message nobody answered yet (``num_responses == 0``) to pending and
    queues it again, rather than failing the chat."""
    ex = api.exchange("try again")
    with api.events(ex.chat_id, ex.message_id) as stream:
        stream.until(lambda e: e.kind == "pending")
        first = make_worker(app.url, tokens=4, crash_after_tokens=0)
        assert first.wait_for_requests(1)[0].done.wait(5)
        first.wait_closed()
        second = make_worker(app.url, tokens=4)
        result = stream.rest()
    handled = second.wait_for_requests(1)[0]
    assert handled.request["thread"]["messages"][-1]["content"] == "try again"
    assert result.tokens == handled.tokens, result.kinds()
    assert result.final is not None and result.final.kind == "message", result.kinds()
    assert result.final.chunk["message"]["content"] == handled.text
    assert api.message(ex.chat_id, ex.message_id)["state"] == "complete"


def test_a_worker_error_response_ends_the_stream_with_that_error(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    ex = api.exchange("fail politely")
    with api.events(ex.chat_id, ex.message_id) as stream:
        stream.until(lambda e: e.kind == "pending")
        worker = make_worker(app.url, tokens=2, error="the model ran out of memory")
        result = stream.rest()
    handled = worker.wait_for_requests(1)[0]
    assert handled.done.wait(5) and handled.outcome == "error"
    assert result.tokens == handled.tokens
    final = result.final
    assert final is not None and final.kind == "error", result.kinds()
    assert final.chunk["error"] == "the model ran out of memory", final.chunk
    assert final.chunk["message"]["state"] == "aborted_by_worker", final.chunk
    assert api.message(ex.chat_id, ex.message_id)["state"] == "aborted_by_worker"
    # the worker is still connected and takes the next chat
    nxt = api.exchange("next one")
    assert worker.wait_for_requests(2)[1].request["thread"]["messages"][-1]["content"] == "next one"
    assert api.wait_finished(nxt.chat_id, nxt.message_id)["state"] == "aborted_by_worker"  # (it errs too)


def test_a_safe_prompt_is_stored_on_the_prompter_message(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """The reference's ``handle_safe_prompt_response``: the worker's ``SafePromptResponse`` is kept
    on the prompter message (``safe_content``, ``safety_level``, ``safety_label``, ``safety_rots``);
    the answer streams as usual."""
    make_worker(app.url, tokens=2, safe_prompt="please be kind")
    ex = api.exchange("be rude")
    assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
    prompter = api.message(ex.chat_id, ex.prompter["id"])
    assert prompter["content"] == "be rude", prompter
    stored = {k: prompter[k] for k in ("safe_content", "safety_level", "safety_label", "safety_rots")}
    assert stored == {
        "safe_content": "please be kind",
        "safety_level": 3,
        "safety_label": "__needs_caution__",
        "safety_rots": "It's wrong to be rude",
    }, prompter


def test_frames_for_another_connections_request_are_dropped(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """A worker can never write into a chat it was not given: a token naming another connection's
    request, a frame only the server may send, and a frame that is not JSON are dropped (counted in
    ``oasst_frames_dropped_total``), and the connection that sent them goes on."""
    dropped_before = api.metrics().value("oasst_frames_dropped_total")  # (the app is shared)
    honest = make_worker(app.url, tokens=4, pause_after_tokens=1)
    ex = api.exchange("mine")
    handled = honest.wait_for_requests(1)[0]
    assert handled.paused.wait(5)
    forger = make_worker(app.url, tokens=1)
    wait_until(lambda: api.metrics().value("oasst_connected_workers") == 2, what="both workers connected")
    forged_token = {"response_type": "token", "request_id": handled.id, "text": "FORGED", "token_id": 1}
    forger.send_raw(json.dumps(forged_token))
    finished = {"response_type": "internal_finished_message", "request_id": handled.id, "message": {}}
    forger.send_raw(json.dumps(finished))
    forger.send_raw("this is not json")
    wait_until(
        lambda: api.metrics().value("oasst_frames_dropped_total") - dropped_before == 3,
        what="three dropped frames",
    )
    with api.events(ex.chat_id, ex.message_id) as stream:
        honest.resume()
        result = stream.rest()
    assert result.tokens == handled.tokens, result.kinds()
    assert result.final is not None and result.final.kind == "message", result.kinds()
    assert "FORGED" not in result.final.chunk["message"]["content"]
    assert not forger.closed.is_set(), forger.end  # still connected: it takes the next chat
    honest.close()
    nxt = api.exchange("for the forger")
    assert forger.wait_for_requests(1)[0].request["thread"]["messages"][-1]["content"] == "for the forger"
    assert api.wait_finished(nxt.chat_id, nxt.message_id)["state"] == "complete"


def test_the_worker_session_keeps_what_the_worker_sent(
    ping_app: AppProcess, ping_redis: RedisServer, make_worker: MakeWorker
) -> None:
    """``worker_session:{id}`` (the reference's key) holds the worker's own ``WorkerInfo`` (not the
    server's hardware: the reference's bug) and, after a pong, the metrics the worker reported;
    it goes when the worker leaves. (The app pings every 0.2 s; it is handed to the test with no
    session in its Redis.)"""
    app = ping_app
    client = redis.Redis.from_url(ping_redis.url)
    try:

        def sessions() -> list[dict[str, Any]]:
            return [json.loads(client.get(key) or b"null") for key in client.scan_iter("worker_session:*")]

        worker = make_worker(app.url, max_parallel_requests=2)
        with_metrics = wait_until(
            lambda: [s for s in sessions() if s and s.get("metrics")], what="a session with a pong's metrics"
        )
        session = with_metrics[0]
        info = session["worker_info"]
        assert info["config"] == {"model_config": LOREM_CONFIG, "max_parallel_requests": 2}, info
        sent = {k: v for k, v in hardware_info().items() if v is not None}
        assert {k: info["hardware_info"].get(k) for k in sent} == sent, info["hardware_info"]
        reported = metrics_info()
        for field in ("cpu_usage", "mem_usage", "swap_usage"):
            assert session["metrics"][field] == reported[field], session["metrics"]
        worker.close()
        wait_until(lambda: sessions() == [], what="the session to be deleted")
    finally:
        client.close()


def test_a_connected_worker_is_pinged_and_its_pongs_keep_it(
    ping_app: AppProcess, make_worker: MakeWorker
) -> None:
    """An idle worker is pinged (the reference: every ``worker_ping_interval``, 3 s; here 0.2 s)
    and, having answered, still gets work."""
    app = ping_app
    api = ChatApi(app.url)
    worker = make_worker(app.url, tokens=1)
    assert worker.pinged.wait(10), (worker.frames, worker.end)
    wait_until(lambda: worker.pings >= 3, what="three pings")
    assert not worker.closed.is_set(), worker.end
    ex = api.exchange("after the ping")
    assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
    assert worker.wait_for_requests(1)[0].outcome == "generated_text"
    api.close()
