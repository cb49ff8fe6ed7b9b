"""The example server when its connections to Redis are reset (``CLIENT KILL``: what a Redis
restart with persistence, a proxy's idle timeout or a network blip does to them): the chat
routes answer as before, and the README's worker (``examples/inference_server/worker.py``),
which the server drops when its dispatch fails, connects again, as the reference's worker does."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from tests.inference_server.conftest import StartApp
from tests.inference_server.harness import API_KEYS, ChatApi, wait_until
from tests.support.redis_server import running_redis
from tests.support.specs import REPO_ROOT


def answer(api: ChatApi, content: str) -> str:
    """The stored answer to ``content`` once complete (the event streams are tested elsewhere)."""
    ex = api.exchange(content)

    def complete() -> dict[str, Any] | None:
        message = api.message(ex.chat_id, ex.message_id)
        assert message["state"] in ("pending", "in_progress", "complete"), message
        return message if message["state"] == "complete" else None

    stored = wait_until(complete, timeout=10, what="the answer")
    return str(stored["content"])


def test_the_example_worker_connects_again_when_the_server_drops_it(start_app: StartApp) -> None:
    with running_redis() as redis_server:
        app = start_app("--redis-url", redis_server.url)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.inference_server.worker",
                "--url",
                app.url.replace("http://", "ws://"),
                "--api-key",
                API_KEYS[0],
                "--delay",
                "0.001",
                "--reconnect",
                "0.2",
            ],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        log: list[str] = []
        reader = threading.Thread(target=lambda: log.extend(worker.stderr or []), daemon=True)
        reader.start()
        api = ChatApi(app.url)

        def connected() -> bool:
            assert worker.poll() is None, log  # (a worker that exited fails here, not by a hang)
            return api.metrics().value("oasst_connected_workers") == 1

        try:
            wait_until(connected, timeout=15, what="the worker connected")
            assert answer(api, "one two three") == "three two one"
            # the server's Redis connections reset: the worker handler's BLPOP fails, and the
            # server closes the worker's socket (nothing is lost: the same Redis, the same data)
            redis_server.command("CLIENT", "KILL", "TYPE", "normal")
            wait_until(
                lambda: any("connecting again in 0.2 s" in line for line in log),
                timeout=10,
                what="the worker saying it connects again",
            )
            wait_until(connected, timeout=15, what="the same worker process connected again")
            assert answer(api, "four five") == "five four"
            assert any("the server closed the connection" in line for line in log), log
        finally:
            api.close()
            worker.terminate()
            worker.wait(10)
            app.stop()


def test_the_chat_routes_answer_after_their_redis_connections_are_reset(start_app: StartApp) -> None:
    with running_redis() as redis_server:
        app = start_app("--redis-url", redis_server.url)
        api = ChatApi(app.url)
        try:
            chat = api.create_chat()  # (its pooled connection stays open, idle)
            redis_server.command("CLIENT", "KILL", "TYPE", "normal")
            # the pooled connection is dead: the next command on it runs again on a new one
            assert api.chat(chat["id"])["id"] == chat["id"]
            assert api.create_chat()["id"] != chat["id"]
        finally:
            api.close()
            app.stop()
