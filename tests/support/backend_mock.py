"""The backend mock for the API client tests: prism (``@stoplight/prism-cli``) serving the OpenAPI spec.

Prism answers every operation of ``backend-openapi.json`` with a body valid for its schema:
the spec's examples by default, random valid bodies with the request header
``Prefer: dynamic=true``. It also checks each request (security header, path and query
parameters, body) against the spec and answers 401 / 422 when one does not conform.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.specs import REPO_ROOT

PRISM_BIN = REPO_ROOT / "node_modules" / ".bin" / "prism"
PRISM_MISSING_MESSAGE = (
    f"the prism mock server is not installed ({PRISM_BIN} is missing): run `make install` "
    "(it runs `npm ci` from package-lock.json)"
)
DYNAMIC = {"Prefer": "dynamic=true"}
"""Request headers that make prism answer with a random body valid for the schema."""


@dataclass
class MockServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until_up(server: MockServer, deadline: float) -> bool:
    """Poll the spec's unauthenticated ``GET /metrics`` until prism answers it."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{server.url}/metrics", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def start_prism(spec: Path, log_dir: Path, *, startup_timeout: float = 60.0, attempts: int = 3) -> MockServer:
    """Start prism on a free 127.0.0.1 port in its own process group; wait until it answers."""
    last: MockServer | None = None
    for attempt in range(attempts):  # another process may take the free port before prism binds it
        port = _free_port()
        log_path = log_dir / f"prism-{port}-{attempt}.log"
        cmd = [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), "-v", "warn", str(spec)]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        server = MockServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
        if _wait_until_up(server, time.monotonic() + startup_timeout):
            return server
        stop_prism(server)
        last = server
    tail = last.log_tail() if last else ""
    raise RuntimeError(f"prism did not start ({' '.join(cmd)}); its output:\n{tail}")


def stop_prism(server: MockServer) -> None:
    """Stop prism's whole process group (node and its children)."""
    process = server.process
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass
    else:
        # prism exited, but a child it started may live on in the group
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
