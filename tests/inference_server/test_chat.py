"""A chat end to end, as the website and the reference worker drive it: the chat routes, the event
stream the browser parses, and the ``WorkRequest`` the worker gets (the reference's
``worker_utils.build_work_request``: the thread from the root to the assistant message's parent)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import msgspec

from oasst_shared import codec
from oasst_shared.schemas import inference
from tests.inference_server.browser import ChatStreamResult
from tests.inference_server.conftest import MakeWorker
from tests.inference_server.harness import COMPAT_HASH, AppProcess, ChatApi, dumps
from tests.inference_server.worker import LOREM_CONFIG, plugin_step


def test_a_chat_end_to_end(app: AppProcess, api: ChatApi, make_worker: MakeWorker) -> None:
    chat = api.create_chat()
    assert {"id", "created_at", "modified_at", "title"} <= chat.keys(), chat
    prompter = api.prompter_message(chat["id"], "hello there")
    assert prompter["role"] == "prompter" and prompter["content"] == "hello there", prompter
    assert prompter["chat_id"] == chat["id"] and prompter["parent_id"] is None, prompter
    assistant = api.assistant_message(chat["id"], prompter["id"])
    assert assistant["role"] == "assistant" and assistant["state"] == "pending", assistant
    assert assistant["parent_id"] == prompter["id"], assistant

    with api.events(chat["id"], assistant["id"]) as stream:
        assert stream.response.status_code == 200, stream.response.read()
        headers = stream.response.headers
        assert headers["content-type"].startswith("text/event-stream"), headers
        assert headers.get("cache-control") == "no-cache", headers
        assert headers.get("x-accel-buffering") == "no", headers
        # no worker yet: the message waits, and the browser is told where it stands
        pending = stream.until(lambda e: e.kind == "pending")
        assert pending.chunk == {"event_type": "pending", "queue_position": 1, "queue_size": 1}, pending.chunk
        worker = make_worker(app.url, tokens=6)
        result = stream.rest()

    handled = worker.wait_for_requests(1)[0]
    assert handled.done.wait(5) and handled.outcome == "generated_text", handled.outcome
    sent = handled.tokens
    assert len(sent) == 6
    kinds = result.kinds()
    first_token = kinds.index("token")
    assert set(kinds[:first_token]) <= {"pending", "parse_error"}, kinds  # (comment pings fail to parse)
    assert kinds[first_token:] == ["token"] * 6 + ["message"], kinds
    assert result.tokens == sent  # every token, in order, one event each
    assert result.text == "".join(sent)
    final = result.final
    assert final is not None and final.kind == "message"
    message = final.chunk["message"]
    assert message["id"] == assistant["id"] and message["chat_id"] == chat["id"], message
    assert message["content"] == "".join(sent), message
    assert message["state"] == "complete" and message["role"] == "assistant", message
    read = msgspec.json.decode(json.dumps(message), type=inference.MessageRead)  # a valid MessageRead
    assert read.content == "".join(sent) and read.state is inference.MessageState.complete

    stored = api.message(chat["id"], assistant["id"])
    assert stored["state"] == "complete" and stored["content"] == "".join(sent), stored
    messages = {m["id"]: m for m in api.chat(chat["id"])["messages"]}
    assert messages.keys() == {prompter["id"], assistant["id"]}, dumps(messages)
    assert messages[assistant["id"]]["content"] == "".join(sent)


def test_the_work_request_carries_the_thread_and_parameters(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """Second turn of a chat: the worker gets [prompter 1, assistant 1, prompter 2], with contents,
    and the parameters from the model config and the request's sampling parameters."""
    worker = make_worker(app.url, tokens=3)
    first = api.exchange("first question")
    reply = api.wait_finished(first.chat_id, first.message_id)
    assert reply["state"] == "complete", reply

    second_prompt = api.prompter_message(first.chat_id, "second question", parent_id=first.message_id)
    sampling = {
        "top_k": 7,
        "top_p": 0.5,
        "temperature": 0.25,
        "repetition_penalty": 1.5,
        "max_new_tokens": 33,
    }
    second = api.assistant_message(first.chat_id, second_prompt["id"], sampling_parameters=sampling)
    assert api.wait_finished(first.chat_id, second["id"])["state"] == "complete"

    handled = worker.wait_for_requests(2)[1]
    request = codec.worker_request.decode(handled.raw)  # the frame is the reference's WorkRequest
    assert isinstance(request, inference.WorkRequest), request
    thread = request.thread.messages
    assert [(m.role, m.content) for m in thread] == [
        ("prompter", "first question"),
        ("assistant", reply["content"]),
        ("prompter", "second question"),
    ], dumps(handled.request["thread"])
    assert [m.id for m in thread] == [first.prompter["id"], first.message_id, second_prompt["id"]]
    assert all(m.chat_id == first.chat_id for m in thread)
    assert second["id"] not in {m.id for m in thread}  # up to the parent, not the message itself
    params = request.parameters
    assert params.model_config.model_id == LOREM_CONFIG["model_id"], params
    assert params.model_config.compat_hash == COMPAT_HASH
    got = params.sampling_parameters
    assert (got.top_k, got.top_p, got.temperature, got.repetition_penalty, got.max_new_tokens) == (
        7,
        0.5,
        0.25,
        1.5,
        33,
    ), got
    assert handled.outcome == "generated_text"


def test_events_of_a_finished_message_answer_204(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """The reference answers ``GET .../events`` of a finished message with 204 (``has_finished``):
    a browser that reconnects after the end gets no stream, and reads the message instead."""
    make_worker(app.url, tokens=2)
    ex = api.exchange("done soon")
    assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
    with api.events(ex.chat_id, ex.message_id) as again:
        assert again.response.status_code == 204, again.response.read()


def test_only_assistant_messages_stream(app: AppProcess, api: ChatApi) -> None:
    """The reference refuses the event stream of a prompter message with 400."""
    ex = api.exchange("just asking")
    with api.events(ex.chat_id, ex.prompter["id"]) as stream:
        assert stream.response.status_code == 400, stream.response.read()


def test_several_chats_at_once(app: AppProcess, api: ChatApi, make_worker: MakeWorker) -> None:
    """Six chats waiting, then one worker taking three at a time: each stream gets its own tokens
    (derived from its own prompt) in order and its own final message; queue positions are the
    reference's (``pos - dequeued``, counted from 1) while all wait."""
    chats = 6
    exchanges = [api.exchange(f"chat{i}") for i in range(chats)]
    all_waiting = threading.Barrier(chats + 1, timeout=15)
    first_pending: dict[int, dict] = {}  # type: ignore[type-arg]

    def browse(i: int) -> ChatStreamResult:
        ex = exchanges[i]
        with api.events(ex.chat_id, ex.message_id) as stream:
            first_pending[i] = stream.until(lambda e: e.kind == "pending").chunk
            all_waiting.wait()
            return stream.rest()

    with ThreadPoolExecutor(chats) as pool:
        futures = [pool.submit(browse, i) for i in range(chats)]
        all_waiting.wait()  # every browser is reading and has seen its position
        worker = make_worker(app.url, max_parallel_requests=3, tokens=8, delay=0.002)
        results = [f.result(timeout=30) for f in futures]

    for i, pending in first_pending.items():
        assert pending == {"event_type": "pending", "queue_position": i + 1, "queue_size": chats}, (
            i,
            pending,
        )
    handled = {h.request["thread"]["messages"][-1]["content"]: h for h in worker.wait_for_requests(chats)}
    assert handled.keys() == {f"chat{i}" for i in range(chats)}
    assert worker.max_in_flight <= 3, worker.max_in_flight
    for i, result in enumerate(results):
        expected = [f"chat{i}#{n} " for n in range(8)]
        assert result.tokens == expected, (i, result.kinds())
        assert result.final is not None and result.final.kind == "message", (i, result.kinds())
        assert result.final.chunk["message"]["content"] == "".join(expected)
        assert result.final.chunk["message"]["id"] == exchanges[i].message_id
        assert api.message(exchanges[i].chat_id, exchanges[i].message_id)["state"] == "complete"


def test_a_plugin_step_reaches_the_browser_between_the_tokens(
    app: AppProcess, api: ChatApi, make_worker: MakeWorker
) -> None:
    """A worker's ``plugin_intermediate`` frame is relayed in its place among the tokens, as the
    reference's ``PluginIntermediateResponseEvent``, which the website shows as a plugin step."""
    ex = api.exchange("use a plugin")
    with api.events(ex.chat_id, ex.message_id) as stream:
        stream.until(lambda e: e.kind == "pending")
        worker = make_worker(app.url, tokens=4, plugin_after_tokens=2)
        result = stream.rest()
    kinds = [k for k in result.kinds() if k not in ("pending", "parse_error")]
    assert kinds == ["token", "token", "plugin", "token", "token", "message"], result.kinds()
    step = result.of("plugin")[0].chunk
    expected = plugin_step(worker.wait_for_requests(1)[0].id, 2)
    assert step["event_type"] == "plugin_intermediate", step
    for name in (
        "current_plugin_thought",
        "current_plugin_action_taken",
        "current_plugin_action_input",
        "current_plugin_action_response",
    ):
        assert step[name] == expected[name], step
    assert result.final is not None and result.final.chunk["message"]["content"] == "".join(result.tokens)
