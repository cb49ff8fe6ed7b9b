"""A worker written as the reference's (``inference/worker/__main__.py``, ``work.py``, ``utils.py``).

What it keeps of the reference:

* sync ``websocket-client``: ``websocket.create_connection(f"{url}/workers/work", header={"X-API-Key": ...,
  "X-Protocol-Version": ...})``, then a ``WorkerInfo`` as the first frame;
* a receive loop dispatching on ``request_type``: ``work`` goes to a thread pool of
  ``max_parallel_requests`` threads, ``ping`` is answered with a ``PongResponse`` carrying metrics,
  ``wrong_api_key`` / ``upgrade_protocol`` / ``terminate`` / ``error`` end the worker;
* per work request: the prompt is built from every message's ``content`` in the thread, then one
  ``TokenResponse`` text frame per token, then a ``GeneratedTextResponse`` (or an ``ErrorResponse``),
  each frame sent under one lock shared by all threads (``utils.send_response``).

Frames are plain ``json`` (no pydantic, no msgspec): the server must accept what any JSON encoder
writes. What the test scripts: the token texts, a delay between tokens (pacing only, never used to
synchronise), a pause after k tokens until :meth:`Worker.resume`, a crash after k tokens (the socket
is shut without a close frame), an error instead of the final text, the key and protocol version.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import websocket  # websocket-client, as the reference worker

from oasst_shared.schemas.inference import INFERENCE_PROTOCOL_VERSION

__all__ = [
    "LOREM_CONFIG",
    "PROTOCOL_VERSION",
    "Handled",
    "Worker",
    "plugin_step",
    "prompt_of",
    "tokens_from_prompt",
]

PROTOCOL_VERSION = INFERENCE_PROTOCOL_VERSION
"""The ``X-Protocol-Version`` the reference worker sends (``inference.INFERENCE_PROTOCOL_VERSION``)."""

LOREM_CONFIG: dict[str, Any] = {
    "model_id": "_lorem",
    "max_input_length": 128,
    "max_total_length": 256,
    "quantized": False,
}
"""``MODEL_CONFIGS["_lorem"]`` as the worker sends it (compat hash ``_lorem-256-128-f``)."""

WAIT = 10.0
"""Upper bound of every wait inside the worker (a test never hangs on it)."""


def hardware_info() -> dict[str, Any]:
    """A ``WorkerHardwareInfo`` of a made-up machine (what was sent must be what the server keeps)."""
    return {
        "uname_sysname": "Linux",
        "uname_release": "6.1.0-test",
        "uname_version": "#1 SMP",
        "uname_machine": "x86_64",
        "uname_processor": "",
        "cpu_count_physical": 3,
        "cpu_count_logical": 6,
        "cpu_freq_max": 3000.0,
        "cpu_freq_min": 800.0,
        "mem_total": 17179869184,
        "swap_total": 0,
        "nvidia_driver_version": None,
        "gpus": [],
    }


def metrics_info() -> dict[str, Any]:
    """A ``WorkerMetricsInfo`` as a worker reports it with a pong or its final frame."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "cpu_usage": 12.5,
        "mem_usage": 40.0,
        "swap_usage": 0.0,
        "gpus": None,
    }


def plugin_step(request_id: str, step: int) -> dict[str, Any]:
    """A ``PluginIntermediateResponse`` (``work.py`` sends these while a plugin runs)."""
    return {
        "response_type": "plugin_intermediate",
        "request_id": request_id,
        "text": "",
        "current_plugin_thought": f"thinking {step}",
        "current_plugin_action_taken": "search",
        "current_plugin_action_input": "weather in Paris",
        "current_plugin_action_response": "sunny",
    }


def prompt_of(work_request: dict[str, Any]) -> str:
    """The prompt as ``work.make_prompt_and_parameters`` builds it (v2 prefixes, no eos token):
    it reads every message's ``content``, so a thread without them fails here as it does there."""
    parts = []
    for message in work_request["thread"]["messages"]:
        prefix = "<|assistant|>" if message["role"] == "assistant" else "<|prompter|>"
        parts.append(prefix + message["content"])  # a None content fails, as in the reference
    return "".join(parts) + "<|assistant|>"


def tokens_from_prompt(count: int) -> Callable[[dict[str, Any]], list[str]]:
    """Token texts derived from the request's last prompter message: ``"{content}#{i} "``, so each
    chat's tokens are its own and a stream that got another chat's token shows it."""

    def make(work_request: dict[str, Any]) -> list[str]:
        prompt_of(work_request)  # builds the prompt as the reference does (fails without contents)
        prompter = [m for m in work_request["thread"]["messages"] if m["role"] == "prompter"]
        tag = prompter[-1]["content"] if prompter else "?"
        return [f"{tag}#{i} " for i in range(count)]

    return make


@dataclass
class Handled:
    """One ``WorkRequest`` as the worker received and answered it."""

    raw: str
    """The frame as received (text)."""
    request: dict[str, Any]
    tokens: list[str] = field(default_factory=list)
    """Token texts sent so far, in order."""
    outcome: str | None = None
    """``generated_text``, ``error``, ``crashed`` or ``failed: ...`` once done."""
    paused: threading.Event = field(default_factory=threading.Event)
    """Set when the worker paused after ``pause_after_tokens`` tokens (all of them sent)."""
    done: threading.Event = field(default_factory=threading.Event)
    finishing: bool = False

    @property
    def id(self) -> str:
        return str(self.request["id"])

    @property
    def text(self) -> str:
        return "".join(self.tokens)


class Worker:
    """A reference-style worker on its own threads. ``start()`` connects and sends ``WorkerInfo``;
    ``close()`` sends a close frame; ``crash()`` shuts the socket without one."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        protocol_version: str | None = PROTOCOL_VERSION,
        model_config: dict[str, Any] | None = None,
        max_parallel_requests: int = 1,
        tokens: int | Callable[[dict[str, Any]], list[str]] = 4,
        delay: float = 0.0,
        pause_after_tokens: int | None = None,
        crash_after_tokens: int | None = None,
        error: str | None = None,
        plugin_after_tokens: int | None = None,
        safe_prompt: str | None = None,
        send_worker_info: bool = True,
    ) -> None:
        self.url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/workers/work"
        self.api_key = api_key
        self.protocol_version = protocol_version
        self.model_config = dict(model_config or LOREM_CONFIG)
        self.max_parallel_requests = max_parallel_requests
        self.token_texts = tokens_from_prompt(tokens) if isinstance(tokens, int) else tokens
        self.delay = delay
        self.pause_after_tokens = pause_after_tokens
        self.crash_after_tokens = crash_after_tokens
        self.error = error
        self.plugin_after_tokens = plugin_after_tokens
        self.safe_prompt = safe_prompt
        self.send_worker_info = send_worker_info

        self.handled: list[Handled] = []
        """Every ``WorkRequest`` received, in order."""
        self.frames: list[str] = []
        """Every text frame received, in order."""
        self.control: list[dict[str, Any]] = []
        """``wrong_api_key`` / ``upgrade_protocol`` / ``terminate`` / ``error`` requests received."""
        self.pings = 0
        self.close_code: int | None = None
        """The close code the server sent (None: no close frame, or not closed yet)."""
        self.end: str | None = None
        """How the connection ended: ``close frame``, ``eof``, ``protocol error: ...``, ``closed by us``."""
        self.closed = threading.Event()
        self.pinged = threading.Event()
        self.request_arrived = threading.Condition()

        self._ws: websocket.WebSocket | None = None
        self._send_lock = threading.Lock()
        self._resume = threading.Event()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=max_parallel_requests, thread_name_prefix="worker-job")
        self._reader: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        """Most work requests held at once (a request counts from its arrival to its last frame)."""

    # ------------------------------------------------------------------------------ connection

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.api_key is not None:
            headers["X-API-Key"] = self.api_key
        if self.protocol_version is not None:
            headers["X-Protocol-Version"] = self.protocol_version
        return headers

    def worker_info(self) -> dict[str, Any]:
        return {
            "config": {
                "model_config": self.model_config,
                "max_parallel_requests": self.max_parallel_requests,
            },
            "hardware_info": hardware_info(),
        }

    def start(self) -> Worker:
        """Connect, send ``WorkerInfo`` (the first frame) and start receiving."""
        ws = websocket.create_connection(self.url, header=self.headers(), timeout=WAIT)
        ws.settimeout(None)  # the reference's worker blocks in recv; close()/crash() unblock it
        self._ws = ws
        if self.send_worker_info:
            # a refused worker may find the socket already closed: what it received tells
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._send(self.worker_info())
        self._reader = threading.Thread(target=self._receive_loop, name="worker-recv", daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> Worker:
        return self.start() if self._ws is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        with self._send_lock:
            assert self._ws is not None
            self._ws.send(text)

    def _receive_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                try:
                    opcode, frame = ws.recv_data_frame(True)
                except websocket.WebSocketProtocolException as exc:
                    self.end = f"protocol error: {exc}"
                    return
                except (websocket.WebSocketConnectionClosedException, OSError, ValueError) as exc:
                    self.end = "closed by us" if self._stopping else f"eof ({type(exc).__name__})"
                    return
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data or b""
                    self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    self.end = "close frame"
                    return
                if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    continue  # ping/pong control frames (websocket-client answers pings itself)
                text = frame.data.decode("utf-8") if isinstance(frame.data, bytes) else frame.data
                if not text:
                    self.end = "eof (empty frame)"
                    return
                self.frames.append(text)
                try:
                    self._dispatch(text)
                except (websocket.WebSocketException, OSError, RuntimeError) as exc:  # (closing meanwhile)
                    self.end = "closed by us" if self._stopping else f"send failed ({type(exc).__name__})"
                    return
                # (the reference's worker raises or exits on a control request; this one goes on
                # reading so the test sees how the server ends the connection)
        finally:
            self.closed.set()
            with self.request_arrived:
                self.request_arrived.notify_all()

    def _dispatch(self, text: str) -> None:
        request = json.loads(text)
        kind = request.get("request_type")
        if kind == "work":
            handled = Handled(raw=text, request=request)
            with self._count_lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            with self.request_arrived:
                self.handled.append(handled)
                self.request_arrived.notify_all()
            self._pool.submit(self._work, handled)
        elif kind == "ping":
            self.pings += 1
            self.pinged.set()
            self._send({"response_type": "pong", "request_id": request.get("id"), "metrics": metrics_info()})
        else:
            self.control.append(request)

    # ------------------------------------------------------------------------------ the work

    def _finishing(self, handled: Handled) -> None:
        """The request stops counting as in flight: before its last frame goes, so the server,
        which may dispatch the next request on that frame, never sees more than allowed."""
        if not handled.finishing:
            handled.finishing = True
            with self._count_lock:
                self.in_flight -= 1

    def _work(self, handled: Handled) -> None:
        try:
            texts = self.token_texts(handled.request)
            if self.safe_prompt is not None:  # the safety model's rewrite, before any token
                self._send(
                    {
                        "response_type": "safe_prompt",
                        "request_id": handled.id,
                        "safe_prompt": self.safe_prompt,
                        "safety_parameters": {"level": 3},
                        "safety_label": "__needs_caution__",
                        "safety_rots": "It's wrong to be rude",
                    }
                )
            for i, text in enumerate(texts):
                if self.pause_after_tokens is not None and i == self.pause_after_tokens:
                    handled.paused.set()
                    self._resume.wait(WAIT)
                    if self._stopping:
                        handled.outcome = "stopped"
                        return
                if self.plugin_after_tokens is not None and i == self.plugin_after_tokens:
                    self._send(plugin_step(handled.id, i))
                if self.crash_after_tokens is not None and i == self.crash_after_tokens:
                    handled.outcome = "crashed"
                    self.crash()
                    return
                self._send(
                    {
                        "response_type": "token",
                        "request_id": handled.id,
                        "text": text,
                        "log_prob": -0.25,
                        "token_id": 1000 + i,
                    }
                )
                handled.tokens.append(text)
                if self.delay:
                    time.sleep(self.delay)  # pacing of generation, not synchronisation
            self._finishing(handled)
            if self.error is not None:
                self._send(
                    {
                        "response_type": "error",
                        "request_id": handled.id,
                        "error": self.error,
                        "metrics": metrics_info(),
                    }
                )
                handled.outcome = "error"
            else:
                self._send(
                    {
                        "response_type": "generated_text",
                        "request_id": handled.id,
                        "text": "".join(texts),
                        "finish_reason": "length",
                        "metrics": metrics_info(),
                    }
                )
                handled.outcome = "generated_text"
        except Exception as exc:
            handled.outcome = f"failed: {type(exc).__name__}: {exc}"
        finally:
            self._finishing(handled)
            handled.done.set()

    def send_raw(self, text: str) -> None:
        """Send one text frame as is (a forged or broken frame)."""
        with self._send_lock:
            assert self._ws is not None
            self._ws.send(text)

    def resume(self) -> None:
        """Let paused work go on."""
        self._resume.set()

    # ------------------------------------------------------------------------------ waiting

    def wait_for_requests(self, count: int, timeout: float = WAIT) -> list[Handled]:
        """Block until ``count`` work requests arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.request_arrived:
            while len(self.handled) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed.is_set() and len(self.handled) < count):
                    raise AssertionError(
                        f"worker got {len(self.handled)} work requests, expected {count} "
                        f"(connection end: {self.end}, control: {self.control})"
                    )
                self.request_arrived.wait(left)
            return list(self.handled[:count])

    def wait_closed(self, timeout: float = WAIT) -> None:
        if not self.closed.wait(timeout):
            raise AssertionError(f"the server did not close the worker's connection within {timeout} s")

    # ------------------------------------------------------------------------------ ending

    def crash(self) -> None:
        """Drop the connection as a dying process does: no close frame, the socket just goes."""
        ws = self._ws
        sock = ws.sock if ws is not None else None  # (the receive thread sets ws.sock to None at EOF)
        if sock is None:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        """Leave cleanly: a close frame, then wait (bounded) for the server's; stop the threads."""
        self._stopping = True
        self._resume.set()
        ws = self._ws
        if ws is not None and not self.closed.is_set():
            try:
                with self._send_lock:
                    ws.send_close()
            except (websocket.WebSocketException, OSError):
                pass
            self.closed.wait(2.0)
        if ws is not None:
            self.crash()  # whatever is still open goes
        if self._reader is not None:
            self._reader.join(WAIT)
        self._pool.shutdown(wait=True, cancel_futures=True)
