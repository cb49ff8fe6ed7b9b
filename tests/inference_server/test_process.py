"""The app as a program: ``--help``, the ready line, SIGTERM (exit 0, its embedded redis-server and
uvicorn worker processes gone), ``--workers N`` (metrics adding up) and ``--chat-auth``."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.inference_server.conftest import MakeWorker, StartApp
from tests.inference_server.harness import API_KEYS, AppProcess, ChatApi, Metrics, wait_until
from tests.support.specs import REPO_ROOT


def test_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.inference_server", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:"), proc.stdout
    for option in ("--port", "--host", "--redis-url", "--api-key", "--workers", "--chat-auth"):
        assert option in proc.stdout, option


@pytest.mark.app_args()
def test_ready_line_then_sigterm_stops_the_app_and_its_redis(own_app: AppProcess) -> None:
    app = own_app
    assert app.url == f"http://127.0.0.1:{app.port}", app.ready_line
    assert app.ready_line.startswith(f"serving on {app.url} ("), app.ready_line
    children = app.descendants()
    assert any("redis" in " ".join(child.cmdline()).lower() for child in children), children
    assert httpx.get(f"{app.url}/metrics", timeout=5).status_code == 200
    assert app.stop() == 0, app.log_tail()
    assert app.leftovers() == [], "the app left processes behind"
    assert app.stdout_lines == [app.ready_line], app.stdout_lines  # one line on stdout


@pytest.mark.slow
@pytest.mark.app_args("--drain-timeout", "1")
def test_sigterm_mid_message_ends_the_stream_and_the_app(
    own_app: AppProcess, make_worker: MakeWorker
) -> None:
    """SIGTERM while a worker is mid-message and a browser reads it: the app exits 0 (bounded),
    the browser's stream ends (never a final ``message`` with tokens missing), the worker's
    connection is closed."""
    app = own_app
    api = ChatApi(app.url)
    try:
        worker = make_worker(app.url, tokens=6, pause_after_tokens=2)
        ex = api.exchange("interrupted")
        with api.events(ex.chat_id, ex.message_id) as stream:
            stream.until(lambda e: e.kind == "token")
            handled = worker.wait_for_requests(1)[0]
            assert handled.paused.wait(5)
            code = app.stop()
            result = stream.rest()
            stream.body_ends()
    finally:
        api.close()
    assert code == 0, app.log_tail()
    assert app.leftovers() == []
    worker.wait_closed()
    assert worker.end == "close frame", worker.end
    assert result.tokens == handled.tokens, result.kinds()
    final = result.final
    assert final is not None and final.kind == "error", result.kinds()
    assert final.chunk["message"]["state"] == "aborted_by_worker", final.chunk


def test_sigterm_lets_an_answer_in_progress_finish_within_the_drain_timeout(
    start_app: StartApp, make_worker: MakeWorker
) -> None:
    """``--drain-timeout 5`` ("seconds open streams get to finish"): SIGTERM while a worker is
    generating an answer that needs about 1 s more; the answer completes, the browser gets all
    of it and the final message, then the app exits 0."""
    app = start_app("--drain-timeout", "5")
    api = ChatApi(app.url)
    try:
        worker = make_worker(app.url, tokens=20, delay=0.05)
        ex = api.exchange("finish me")
        with api.events(ex.chat_id, ex.message_id) as stream:
            stream.until(lambda e: e.kind == "token")
            code = app.stop()
            result = stream.rest()
    finally:
        api.close()
    assert code == 0, app.log_tail()
    handled = worker.wait_for_requests(1)[0]
    assert handled.done.wait(5) and handled.outcome == "generated_text", handled.outcome
    assert result.tokens == handled.tokens, result.kinds()
    assert result.final is not None and result.final.kind == "message", result.final


@pytest.mark.slow
@pytest.mark.app_args("--workers", "2")
def test_workers_option_runs_processes_whose_metrics_add_up(
    own_app: AppProcess, make_worker: MakeWorker
) -> None:
    """``--workers 2``: two uvicorn processes on one Redis; chats go through whichever process
    answers, and every scrape of ``/metrics`` shows the sum over both."""
    app = own_app
    api = ChatApi(app.url)
    try:
        chats, tokens_each = 4, 5
        exchanges = [api.exchange(f"multi{i}") for i in range(chats)]
        results, worker = api.read_when_all_pending(
            exchanges, lambda: make_worker(app.url, tokens=tokens_each, max_parallel_requests=2)
        )
        for i, result in enumerate(results):
            assert result.tokens == [f"multi{i}#{n} " for n in range(tokens_each)], (i, result.kinds())
        total = chats * tokens_each
        wait_until(lambda: api.metrics().value("oasst_tokens_relayed_total") == total, what="the sum")
        for _ in range(6):  # new connections: each scrape may land on either process
            with httpx.Client(base_url=app.url, timeout=5) as fresh:
                text = fresh.get("/metrics").text
            scraped = Metrics(text)
            assert scraped.value("oasst_tokens_relayed_total") == total
            assert scraped.value("oasst_connected_workers") == 1
        worker.close()
    finally:
        api.close()
    assert app.stop() == 0, app.log_tail()
    assert app.leftovers() == []


@pytest.mark.app_args("--chat-auth")
def test_chat_auth_refuses_anonymous_chat_calls(own_app: AppProcess, make_worker: MakeWorker) -> None:
    """With ``--chat-auth`` the chat routes refuse a caller without credentials (or with a wrong
    one) and serve one with ``Authorization: Bearer <an API key>``; the worker route still takes
    its API key."""
    app = own_app
    with httpx.Client(base_url=app.url, timeout=5) as http:
        assert http.post("/chats", json={}).status_code == 401
        assert http.get("/chats/nope/messages/nope/events").status_code == 401
        wrong = {"Authorization": "Bearer not-a-key"}
        assert http.post("/chats", json={}, headers=wrong).status_code == 401
    api = ChatApi(app.url, headers={"Authorization": f"Bearer {API_KEYS[1]}"})
    ex = api.exchange("authorised")
    worker = make_worker(app.url)
    wait_until(
        lambda: api.metrics().value("oasst_connected_workers") == 1 or worker.closed.is_set(),
        what="the worker to be connected",
    )
    assert worker.control == [] and not worker.closed.is_set(), (worker.control, worker.end)
    assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
    api.close()
