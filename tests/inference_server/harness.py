"""The app as a subprocess, its HTTP API as the website calls it, and its ``/metrics`` read back.

``AppProcess`` runs ``python -m examples.inference_server --host 127.0.0.1 --port P ...`` from the
repository root, waits for its one ready line (``serving on http://HOST:PORT (...)``) and stops it
with SIGTERM: ``stop()`` returns the exit code, and the processes the app started (its embedded
``redis-server``, uvicorn's worker processes) are recorded so a test can check none outlives it.

``AppPool`` launches the apps a session needs ahead of need (a few at a time: starting one is
CPU-bound); ``Idle`` is what a shared app must be between two tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import redis

from tests.inference_server.browser import BrowserEvent, ChatStreamResult, chat_events, iterator_sse
from tests.inference_server.worker import Worker
from tests.support.redis_server import RedisServer, running_redis
from tests.support.specs import REPO_ROOT

__all__ = [
    "API_KEYS",
    "COMPAT_HASH",
    "AppPool",
    "AppProcess",
    "AppSet",
    "AppSpec",
    "ChatApi",
    "Idle",
    "Metrics",
    "free_port",
    "stop_all",
    "wait_until",
]

API_KEYS = ("test-key-alpha", "test-key-beta")
"""The worker API keys every app in these tests is started with."""
MODEL = "_lorem"
"""The model config name chats ask for (``MODEL_CONFIGS["_lorem"]``)."""
COMPAT_HASH = "_lorem-256-128-f"
"""Its compat hash: the work queue ``work:_lorem-256-128-f``."""

READY_LINE = re.compile(r"serving on (http://[^\s()]+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(probe: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy (returned) or fail after ``timeout``.

    For state only visible by asking (a gauge, a stored message): a bounded poll, never a sleep
    standing in for an event."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: last {last!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------------- the process


class AppProcess:
    """``python -m examples.inference_server`` on 127.0.0.1, started and stopped by a test."""

    def __init__(
        self, *args: str, log_dir: Path, name: str = "app", on_change: Callable[[], None] | None = None
    ) -> None:
        self.args = list(args)
        self.log_dir = log_dir
        self.name = name
        self.port: int | None = None
        self.url = ""
        self.ready_line = ""
        self.stdout_lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.children: list[psutil.Process] = []
        self.returncode: int | None = None
        self.first_metrics: Metrics | None = None
        """``/metrics`` as first scraped, before any test's traffic (set by ``AppPool``)."""
        self.on_change = on_change
        """Called (from the stdout reader thread) when the app printed its ready line or exited."""
        self._ready = threading.Event()
        self._stdout_thread: threading.Thread | None = None
        self._stderr_path = log_dir / f"{name}.stderr.log"
        self._spawned_at = 0.0
        self._attempts = 0
        self._terminated = False

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "examples.inference_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.args,
        ]

    def start(self, timeout: float = START_TIMEOUT) -> AppProcess:
        """``launch()`` then ``wait_ready()``."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> AppProcess:
        """Start the process on a free port and return at once (``wait_ready`` waits for it)."""
        self._spawn(free_port())
        return self

    @property
    def starting(self) -> bool:
        """Launched, not ready yet and not exited."""
        return self.proc is not None and not self._ready.is_set() and self.proc.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> AppProcess:
        """Wait for the ready line (at most ``timeout`` s from the launch); the free port may be taken
        between probing and binding: then it is started again on another one (3 attempts in all)."""
        if self.proc is None:
            raise AssertionError(f"{self.name} was never launched")
        while not self._await_ready(timeout):
            log = self.log_tail()
            if self._attempts >= 3 or "address already in use" not in log.lower():
                raise AssertionError(
                    f"{self.name} exited with {self.returncode} before its ready line; "
                    f"stdout {self.stdout_lines!r}; stderr:\n{log}"
                )
            self._spawn(free_port())
        return self

    def _spawn(self, port: int) -> None:
        self._attempts += 1
        self._ready.clear()
        self.stdout_lines = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("OASST_REDIS_URL", None)  # the app is told its Redis on the command line only
        stderr = open(self._stderr_path, "a", encoding="utf-8")  # noqa: SIM115 - kept by the child
        try:
            self.proc = subprocess.Popen(
                self.command(port),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        finally:
            stderr.close()
        self._spawned_at = time.monotonic()
        self.port = port
        self._stdout_thread = threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True)
        self._stdout_thread.start()

    def _await_ready(self, timeout: float) -> bool:
        """True once the ready line is out; False if the process exited before it."""
        assert self.proc is not None and self._stdout_thread is not None
        deadline = self._spawned_at + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._stdout_thread.join(2)
                if self._ready.is_set():
                    break
                self.returncode = self.proc.returncode
                return False
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"{self.name} printed no ready line within {timeout} s; stdout {self.stdout_lines!r}; "
                    f"stderr:\n{self.log_tail()}"
                )
        return True

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            self.stdout_lines.append(line)
            match = READY_LINE.search(line)
            if match and not self._ready.is_set():
                self.url = match.group(1).rstrip("/")
                self.ready_line = line
                self._ready.set()
                if self.on_change is not None:
                    self.on_change()
        if self.on_change is not None:
            self.on_change()

    @property
    def redis_url(self) -> str:
        """The Redis the app uses, from its ready line (``serving on URL (REDIS_URL)``)."""
        match = re.search(r"\((\S+)\)\s*$", self.ready_line)
        if match is None:
            raise AssertionError(f"no Redis URL in the ready line {self.ready_line!r}")
        return match.group(1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self) -> None:
        """Send SIGTERM (once) without waiting; the processes the app had started are recorded in
        ``children`` first (see ``leftovers``)."""
        proc = self.proc
        if proc is None:
            raise AssertionError("not started")
        if proc.poll() is None and not self._terminated:
            self.children = self.descendants()
            proc.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait (bounded) for the exit; returns the exit code (killed: -9).

        The processes the app had started are kept in ``children`` (see ``leftovers``)."""
        self.terminate()
        proc = self.proc
        assert proc is not None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout} s of SIGTERM; stderr:\n{self.log_tail()}"
            ) from None
        if self._stdout_thread is not None:
            self._stdout_thread.join(5)
        self.returncode = proc.returncode
        return proc.returncode

    def leftovers(self, timeout: float = 5.0) -> list[psutil.Process]:
        """The app's child processes still running ``timeout`` s after it exited.

        A zombie has exited: once the app is gone its children are re-parented to PID 1, which
        reaps them when it gets round to it (here seconds later); waiting for that would only
        measure PID 1. A bounded poll: whether a process still runs can only be asked."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [child for child in self.children if _still_running(child)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the app and whatever it had started (cleanup after a failure)."""
        if self.proc is None:
            return
        children = self.descendants() or self.children
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for child in children:
            with suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self._stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --------------------------------------------------------------------------------- metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Metrics:
    """The Prometheus text exposition of ``/metrics``, parsed (samples, ``# TYPE`` lines)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = []
        self.types: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                self.types[name] = kind.strip()
                continue
            if not line.strip() or line.startswith("#"):
                continue
            match = _SAMPLE.match(line.strip())
            if match is None:
                raise AssertionError(f"not a Prometheus sample line: {line!r}")
            name, labels, value = match.groups()
            parsed = {k: v.encode().decode("unicode_escape") for k, v in _LABEL.findall(labels or "")}
            self.samples.append(Sample(name, parsed, float(value)))

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` with these labels (0 when there is none)."""
        return sum(s.value for s in self.find(name, **labels))


# --------------------------------------------------------------------------------- the HTTP API


class ChatApi:
    """The chat routes as the website calls them (no auth unless the app was started with it)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self.http = httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT, headers=self.headers)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise AssertionError(
                f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
        return response.json()

    def create_chat(self) -> dict[str, Any]:
        return self._json(self.http.post("/chats", json={}))  # CreateChatRequest has no fields

    def chat(self, chat_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/chats/{chat_id}"))

    def prompter_message(self, chat_id: str, content: str, parent_id: str | None = None) -> dict[str, Any]:
        body = {"content": content, "parent_id": parent_id}
        return self._json(self.http.post(f"/chats/{chat_id}/prompter_message", json=body))

    def assistant_message(
        self,
        chat_id: str,
        parent_id: str,
        *,
        model_config_name: str = MODEL,
        sampling_parameters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"parent_id": parent_id, "model_config_name": model_config_name}
        if sampling_parameters is not None:
            body["sampling_parameters"] = sampling_parameters
        return self._json(self.http.post(f"/chats/{chat_id}/assistant_message", json=body))

    def message(self, chat_id: str, message_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/chats/{chat_id}/messages/{message_id}"))

    def wait_finished(self, chat_id: str, message_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The message once it is no longer pending or in progress (a bounded poll: with the
        worker already connected, its stream may be over before a browser could open it)."""
        return wait_until(
            lambda: (m := self.message(chat_id, message_id))["state"] not in ("pending", "in_progress") and m,
            timeout=timeout,
            what=f"message {message_id} to finish",
        )

    def exchange(self, content: str, chat_id: str | None = None, parent_id: str | None = None) -> Exchange:
        """A prompter message (in a new chat unless ``chat_id``) and the assistant reply it queues."""
        if chat_id is None:
            chat_id = self.create_chat()["id"]
        prompter = self.prompter_message(chat_id, content, parent_id)
        assistant = self.assistant_message(chat_id, prompter["id"])
        return Exchange(chat_id, prompter, assistant)

    def metrics(self) -> Metrics:
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"].startswith("text/plain"), response.headers
        return Metrics(response.text)

    @contextmanager
    def events(
        self, chat_id: str, message_id: str, *, read_timeout: float = HTTP_TIMEOUT
    ) -> Iterator[Stream]:
        """``GET .../events`` streamed on a connection of its own, as a browser tab does."""
        timeout = httpx.Timeout(HTTP_TIMEOUT, read=read_timeout)
        with (
            httpx.Client(base_url=self.base_url, timeout=timeout, headers=self.headers) as client,
            client.stream(
                "GET",
                f"/chats/{chat_id}/messages/{message_id}/events",
                headers={"Accept": "text/event-stream"},
            ) as response,
        ):
            yield Stream(response)

    def read_when_all_pending(
        self, exchanges: list[Exchange], then: Callable[[], T], *, timeout: float = 20
    ) -> tuple[list[ChatStreamResult], T]:
        """A browser per exchange, each reading its assistant message's events; once every one has
        seen its first ``pending`` event, ``then()`` (say, start a worker); then each stream to its
        end. The streams' results, in the exchanges' order, and what ``then`` returned."""
        ready = threading.Barrier(len(exchanges) + 1, timeout=15)

        def browse(ex: Exchange) -> ChatStreamResult:
            with self.events(ex.chat_id, ex.message_id) as stream:
                stream.until(lambda e: e.kind == "pending")
                ready.wait()
                return stream.rest()

        with ThreadPoolExecutor(len(exchanges)) as pool:
            futures = [pool.submit(browse, ex) for ex in exchanges]
            ready.wait()
            outcome = then()
            return [f.result(timeout=timeout) for f in futures], outcome


@dataclass
class Exchange:
    chat_id: str
    prompter: dict[str, Any]
    assistant: dict[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.assistant["id"])


class Stream:
    """One open event stream: the browser's callbacks as they come, and what was seen so far."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.result = ChatStreamResult(status=response.status_code, headers=response.headers)
        self._chunks = response.iter_bytes()
        self._events = chat_events(iterator_sse(self._chunks)) if response.status_code == 200 else iter(())

    def __iter__(self) -> Iterator[BrowserEvent]:
        for event in self._events:
            self.result.events.append(event)
            yield event

    def until(self, predicate: Callable[[BrowserEvent], bool]) -> BrowserEvent:
        """Read until an event matches (returned); fails if the stream ends first."""
        for event in self:
            if predicate(event):
                return event
        raise AssertionError(f"the stream ended before the awaited event; saw {self.result.kinds()}")

    def rest(self) -> ChatStreamResult:
        """Read to the browser's end (a ``message`` or ``error``, or the end of the body)."""
        for _ in self:
            pass
        return self.result

    def body_ends(self) -> bytes:
        """What the server still sends after the browser stopped reading (must end, not hang)."""
        return b"".join(self._chunks)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


# --------------------------------------------------------------------------------- several apps


SETTLE_TIMEOUT = 10.0


def _until_empty(probe: Callable[[], list[T]], timeout: float) -> list[T]:
    """Poll ``probe`` until it returns an empty list (state only visible by asking); its last
    answer (empty, or what was still wrong after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


class Idle:
    """What is left of earlier tests on a shared app: asked of each process (``/metrics``) and of
    their Redis."""

    def __init__(self, apps: list[AppProcess]) -> None:
        self.apps = apps
        self.redis = redis.Redis.from_url(apps[0].redis_url)
        self.http = [ChatApi(app.url) for app in apps]

    def close(self) -> None:
        self.redis.close()
        for client in self.http:
            client.close()

    def connections(self) -> list[str]:
        """Workers still counted connected, event streams still counted open, exited processes."""
        problems = []
        for app, client in zip(self.apps, self.http, strict=True):
            if app.proc is None or app.proc.poll() is not None:
                code = None if app.proc is None else app.proc.returncode
                problems.append(f"{app.name} exited with {code}; stderr:\n{app.log_tail()}")
                continue
            metrics = client.metrics()
            for name in ("oasst_connected_workers", "oasst_open_event_streams"):
                if metrics.value(name):
                    problems.append(f"{app.name}: {name} {metrics.value(name):g}")
        return problems

    def queued(self) -> list[str]:
        return [
            f"{key.decode()}: {length} queued"
            for key in self.redis.scan_iter("work:*")
            if (length := self.redis.llen(key))
        ]

    def problems(self) -> list[str]:
        problems = self.connections()
        if problems:
            return problems
        problems += self.queued()
        for key in self.redis.scan_iter("ctr_enq:*"):
            queue = key.decode().removeprefix("ctr_enq:")
            enqueued = int(self.redis.get(key) or 0)
            dequeued = int(self.redis.get(f"ctr_deq:{queue}") or 0)
            if enqueued != dequeued:
                problems.append(f"{queue}: {enqueued} enqueued, {dequeued} dequeued")
        problems += [f"{key.decode()} left" for key in self.redis.scan_iter("worker_session:*")]
        return problems

    def serve_queued(self) -> None:
        """Work a test queued and left unanswered (a message asked for and never streamed) is
        answered by a worker of the fixture's, which then leaves."""
        dequeued_before = self.dequeued()
        janitor = Worker(self.apps[0].url, api_key=API_KEYS[0], tokens=1).start()

        def unserved() -> list[str]:
            # the only worker connected: every dequeue from here on is work on its way to it (a
            # message dequeued but not yet received counts, else it would leave with one in flight)
            in_flight = self.dequeued() - dequeued_before - len(janitor.handled)
            return (
                self.queued()
                + [h.id for h in janitor.handled if not h.done.is_set()]
                + [f"{in_flight} dequeued, not yet received"] * (in_flight > 0)
            )

        try:
            _until_empty(unserved, SETTLE_TIMEOUT)
        finally:
            janitor.close()

    def dequeued(self) -> int:
        """Dequeues counted over every work queue."""
        return sum(int(self.redis.get(key) or 0) for key in self.redis.scan_iter("ctr_deq:*"))

    def settle(self) -> list[str]:
        """Once the server has noticed the test's workers and streams are gone and what they left
        queued is served: what is still not idle."""
        problems = _until_empty(self.connections, SETTLE_TIMEOUT)
        if problems:
            return problems
        for _ in range(3):  # (work sent to the janitor as it left goes back to the queue)
            if not self.queued():
                break
            self.serve_queued()
            _until_empty(self.connections, SETTLE_TIMEOUT)
        return _until_empty(self.problems, SETTLE_TIMEOUT)


def stop_all(apps: list[AppProcess]) -> list[str]:
    """SIGTERM every app at once, then wait for each: what went wrong (an exit code other than 0,
    no exit within the bound, processes left behind), one line per problem."""
    for app in apps:
        app.terminate()
    problems = []
    for app in apps:
        try:
            code = app.stop()
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        if code != 0:
            problems.append(f"{app.name} exited with {code} after SIGTERM; stderr:\n{app.log_tail()}")
        alive = app.leftovers()
        if alive:
            problems.append(f"{app.name} left processes running after it exited: {alive}")
            for proc in alive:
                proc.kill()
    return problems


@dataclass(frozen=True)
class AppSpec:
    """One configuration the pool runs: ``count`` processes started with ``args``, on a Redis of
    the pool's own (``own_redis``, given as ``--redis-url``) or each on its embedded one."""

    key: str
    args: tuple[str, ...] = ()
    count: int = 1
    own_redis: bool = False


@dataclass
class AppSet:
    """The processes of one ``AppSpec`` (and the Redis they share, if the pool gave them one)."""

    spec: AppSpec
    apps: list[AppProcess]
    redis: RedisServer | None = None
    handed_out: bool = False
    _idle: Idle | None = None

    def idle(self) -> Idle:
        """The checks of an idle app, on connections of their own (kept until ``close``)."""
        if self._idle is None:
            self._idle = Idle(self.apps)
        return self._idle

    def close(self) -> None:
        if self._idle is not None:
            self._idle.close()
            self._idle = None


class AppPool:
    """The apps a test session needs, launched ahead of need.

    ``specs`` come in the order the selected tests first need them; a background thread launches
    them in that order, never more than ``parallel`` starting at once (starting an app is CPU-bound:
    imports, a spawned uvicorn process, a redis-server), so later apps start while earlier tests
    run. ``get(key)`` waits for a configuration (launching it at once if the thread has not yet);
    ``take(key)`` does the same and gives the caller the processes to stop (a test's own app).
    ``close()`` stops every app still held, all at once, and reports what went wrong."""

    def __init__(self, specs: list[AppSpec], *, log_dir: Path, parallel: int) -> None:
        self.specs = {spec.key: spec for spec in specs}
        self.order = [spec.key for spec in specs]
        self.log_dir = log_dir
        self.parallel = max(1, parallel)
        self._sets: dict[str, AppSet] = {}
        self._launched: set[str] = set()
        self._errors: dict[str, BaseException] = {}
        self._redis: dict[str, Any] = {}  # key -> (its running_redis() context, the RedisServer)
        self._generation: dict[str, int] = {}
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._launch_ahead, name="app-pool", daemon=True)

    def start(self) -> AppPool:
        self._thread.start()
        return self

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _starting(self) -> int:
        return sum(app.starting for app_set in self._sets.values() for app in app_set.apps)

    def _launch_ahead(self) -> None:
        for key in self.order:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._starting() < self.parallel)
                if self._closed:
                    return
                if key not in self._launched:
                    self._launch(key)

    def _launch(self, key: str) -> None:
        """Launch ``key``'s processes (with the lock held); a failure is kept for ``get``."""
        self._launched.add(key)
        spec = self.specs[key]
        generation = self._generation[key] = self._generation.get(key, 0) + 1
        try:
            args = spec.args
            redis_server = None
            if spec.own_redis:
                if key not in self._redis:
                    context = running_redis()
                    self._redis[key] = (context, context.__enter__())
                redis_server = self._redis[key][1]
                args = ("--redis-url", redis_server.url, *args)
            suffix = "" if generation == 1 else f"-{generation}"
            name = re.sub(r"[^\w.-]+", "_", key.rpartition("::")[2])  # (a test's node id: its name)
            apps = [
                AppProcess(
                    *args,
                    log_dir=self.log_dir,
                    name=f"{name}{'' if spec.count == 1 else f'-{i}'}{suffix}",
                    on_change=self._notify,
                )
                for i in range(spec.count)
            ]
            self._sets[key] = AppSet(spec, apps, redis_server)
            for app in apps:
                app.launch()
        except BaseException as exc:
            self._errors[key] = exc

    def get(self, key: str, *, scrape: bool = True) -> AppSet:
        """``key``'s processes, ready (the first time, unless not ``scrape``: ``first_metrics``)."""
        with self._cond:
            if key not in self._launched:
                self._launch(key)
            if key in self._errors:
                raise AssertionError(f"could not launch {key}: {self._errors[key]!r}") from self._errors[key]
            app_set = self._sets[key]
        for app in app_set.apps:
            app.wait_ready()
        if not app_set.handed_out:
            app_set.handed_out = True
            for app in app_set.apps if scrape else ():
                client = ChatApi(app.url)
                try:
                    app.first_metrics = client.metrics()
                finally:
                    client.close()
        return app_set

    def take(self, key: str) -> AppProcess:
        """``key``'s one process, ready, now the caller's to stop."""
        app_set = self.get(key, scrape=False)
        with self._cond:
            del self._sets[key]
        (app,) = app_set.apps
        return app

    def retire(self, key: str) -> list[str]:
        """Stop ``key``'s processes (checked as at the end) and launch a fresh set for the next test;
        its Redis, if the pool gave it one, is emptied."""
        with self._cond:
            app_set = self._sets.pop(key, None)
            self._launched.discard(key)
            self._errors.pop(key, None)
        if app_set is None:
            return []
        app_set.close()
        problems = stop_all([app for app in app_set.apps if app.proc is not None])
        if app_set.redis is not None:
            app_set.redis.flushall()
        with self._cond:
            self._launch(key)
        return problems

    def close(self) -> list[str]:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            sets = list(self._sets.values())
            self._sets.clear()
        self._thread.join(STOP_TIMEOUT)
        for app_set in sets:
            app_set.close()
            for app in app_set.apps:
                if app.starting:  # (never used: a SIGTERM before it set its handlers would kill it)
                    with suppress(AssertionError):
                        app.wait_ready()
        problems = []
        apps = [app for app_set in sets for app in app_set.apps if app.proc is not None]
        for app in apps:
            if app.proc is not None and app.proc.poll() is not None and not app._terminated:
                problems.append(
                    f"{app.name} had exited with {app.proc.returncode}; stderr:\n{app.log_tail()}"
                )
        problems += stop_all([app for app in apps if app.proc is not None and app.proc.poll() is None])
        for context, _ in self._redis.values():
            context.__exit__(None, None, None)
        self._redis.clear()
        return problems
