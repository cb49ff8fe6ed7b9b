"""``make redis`` (``python -m tools.redis_server``): the README's one command for a Redis, and the
README's relay example run against it as the README says, printing what it did."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.package.test_readme import code_blocks
from tests.support.redis_server import running_redis
from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64)


class Command:
    """``python -m tools.redis_server`` running in the background, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.redis_server", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True).start()

    def line(self, timeout: float = 20) -> str:
        return self.lines.get(timeout=timeout).rstrip("\n")

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)


@contextmanager
def redis_command(*args: str) -> Iterator[Command]:
    command = Command(*args)
    try:
        yield command
    finally:  # SIGTERM first: the command then stops its redis-server (a SIGKILL would orphan it)
        if command.proc.poll() is None:
            command.proc.terminate()
            try:
                command.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                command.proc.kill()
                command.proc.wait()


def relay_block() -> str:
    """The README's relay example (the block with the worker websocket handler)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in code_blocks(text, "README.md") if "async def worker_websocket" in b.code]
    return block.code


def test_make_redis_runs_the_command() -> None:
    # (without the variables of a make that runs the tests: make test-latest passes VENV=.venv-highest)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV")}
    done = subprocess.run(
        ["make", "-n", "redis"], cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ".venv/bin/python -m tools.redis_server"


def test_the_readme_names_the_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    relay_section = readme.split("### Relay tokens through Redis", 1)[1].split("\n### ", 1)[0]
    assert "`make redis`" in relay_section and "127.0.0.1:6379" in relay_section
    assert ".venv/bin/python relay_demo.py" in relay_section


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_serves_until_stopped_and_the_readme_example_prints_what_it_did(
    sig: int, tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with redis_command("--port", str(port)) as command:
        ready = command.line()
        assert ready.startswith("redis-server ") and f"is serving {url} " in ready
        assert "Ctrl-C stops it" in ready
        assert ping(port) == b"+PONG\r\n"

        # the README: save the block as relay_demo.py, run it with the venv's Python
        script = tmp_path / "relay_demo.py"
        script.write_text(relay_block(), encoding="utf-8")
        demo = subprocess.run(
            [sys.executable, str(script)],
            cwd=REPO_ROOT,
            env={**os.environ, "OASST_REDIS_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr
        forwarded, received = demo.stdout.splitlines()
        assert forwarded.startswith("worker connection: forwarded 4 frames to message:msg-")
        assert ", dropped 1 naming msg-" in forwarded
        assert received.endswith(
            "got 4 events, 'Sequoias are tall'; chat " + forwarded.rsplit(" ", 1)[1] + " got none"
        )
        assert demo.stderr.startswith("dropped a token frame of request 'msg-")  # the handler's warning
        assert "spam" not in demo.stderr  # the dropped frame's text is not logged

        assert command.stop(sig) == 0
        assert command.line() == f"redis-server on {url} stopped"
    with pytest.raises(OSError):
        ping(port)


def test_a_redis_already_serving_is_used() -> None:
    with running_redis(use_env=False) as srv:
        assert srv.port is not None
        done = subprocess.run(
            [sys.executable, "-m", "tools.redis_server", "--port", str(srv.port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0
    assert done.stdout == f"a Redis already answers at {srv.url}; nothing started (use that one)\n"


def test_a_port_held_by_something_else_is_one_line() -> None:
    with socket.socket() as holder:  # accepts, never answers PING
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tools.redis_server", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"error: 127.0.0.1:{port} is in use by something that is not Redis: "
        "pick another port (--port N) and set OASST_REDIS_URL=redis://127.0.0.1:N/0\n"
    )


def test_the_command_has_help_and_refuses_a_bad_port() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "tools.redis_server", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m tools.redis_server")
    bad = subprocess.run(
        [sys.executable, "-m", "tools.redis_server", "--port", "70000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].endswith("error: --port must be between 1 and 65535, not 70000")
