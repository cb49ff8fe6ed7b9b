"""The blocking facade ``OasstApiClientSync``: generated from the async client and current,
the same signatures, every method forwarded as called, and real requests on 127.0.0.1 with
the async client's results, errors, retries and timeouts; threads, close and cleanup."""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from oasst_shared.api_client import (
    OasstApiAuthError,
    OasstApiClient,
    OasstApiClientSync,
    OasstApiTimeoutError,
)
from oasst_shared.exceptions import OasstErrorCode
from oasst_shared.schemas import protocol
from tests.support.fault_server import FaultServer, respond, respond_json, stall
from tools import generate_sync as _generate_sync

API_KEY = "sk-sync-test-0b7f3a1e"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")
TASK_ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
TASK_DONE = {"id": TASK_ID, "type": "task_done"}


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "oasst-api-client" and t.is_alive()]


@pytest.fixture
def client(server: FaultServer) -> Iterator[OasstApiClientSync]:
    with OasstApiClientSync(
        server.url, API_KEY, timeout=5.0, retry_initial_delay=0.01, retry_max_delay=0.02
    ) as api:
        yield api


# ------------------------------------------------------------------------ generated and current


def test_generated_module_is_current() -> None:
    """What `make generate` runs, in --check mode: it names a stale facade and the fix."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.generate_sync", "--check"],
        cwd=_generate_sync.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    head = _generate_sync.TARGET.read_text(encoding="utf-8").splitlines()[:2]
    assert "do not edit" in head[0] and "make generate" in head[1]


def test_check_mode_reports_and_writing_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = _generate_sync.TARGET.read_text(encoding="utf-8")
    target = tmp_path / "_sync.py"
    target.write_text("# an old version\n", encoding="utf-8")
    monkeypatch.setattr(_generate_sync, "TARGET", target)
    assert _generate_sync.main(["--check"]) == 1
    assert capsys.readouterr().err == (
        f"stale: {target} is not what `python -m tools.generate_sync` generates; run `make generate`\n"
    )
    assert target.read_text(encoding="utf-8") == "# an old version\n", "--check must not write"
    assert _generate_sync.main([]) == 0
    assert _generate_sync.main(["--check"]) == 0
    assert target.read_text(encoding="utf-8") == committed


def test_generator_refuses_a_name_it_cannot_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _generate_sync.CLIENT_SOURCE.read_text(encoding="utf-8")
    altered = tmp_path / "_client.py"
    altered.write_text(
        source.replace(
            "async def close_task(self, message_id: str)", "async def close_task(self, message_id: Mystery)"
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(_generate_sync, "CLIENT_SOURCE", altered)
    with pytest.raises(_generate_sync.GenerateError, match="Mystery"):
        _generate_sync.render()


def test_generator_refuses_star_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _generate_sync.CLIENT_SOURCE.read_text(encoding="utf-8")
    altered = tmp_path / "_client.py"
    original = "async def close_task(self, message_id: str)"
    star = source.replace(original, "async def close_task(self, *ids: str)")
    altered.write_text(star, encoding="utf-8")
    monkeypatch.setattr(_generate_sync, "CLIENT_SOURCE", altered)
    with pytest.raises(_generate_sync.GenerateError, match=r"\*args"):
        _generate_sync.render()


# -------------------------------------------------------------------------------- same API


def public_async_methods() -> list[str]:
    return sorted(
        name
        for name, fn in inspect.getmembers(OasstApiClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "close"
    )


def test_every_async_method_has_a_blocking_twin_with_the_same_signature() -> None:
    names = public_async_methods()
    assert len(names) >= 40
    for name in names:
        twin = getattr(OasstApiClientSync, name, None)
        assert twin is not None, f"OasstApiClientSync.{name} is missing"
        assert not inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin) == inspect.signature(getattr(OasstApiClient, name)), name
        assert inspect.getdoc(twin) == inspect.getdoc(getattr(OasstApiClient, name)), name


def test_constructor_takes_the_async_clients_settings_except_the_session() -> None:
    async_params = dict(inspect.signature(OasstApiClient.__init__).parameters)
    del async_params["session"]
    sync_params = dict(inspect.signature(OasstApiClientSync.__init__).parameters)
    assert list(sync_params) == list(async_params)
    for name, param in sync_params.items():
        assert (param.default, param.annotation) == (
            async_params[name].default,
            async_params[name].annotation,
        )


class Recorder:
    """Stands in for the async client: each method records how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, inspect.BoundArguments]] = []
        self.loop_thread: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        target = getattr(OasstApiClient, name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            self.loop_thread.add(threading.current_thread().name)
            bound = inspect.signature(target).bind(None, *args, **kwargs)
            self.calls.append((name, bound))
            return ("result of", name)

        return method

    async def close(self) -> None:
        pass


def test_every_method_forwards_its_arguments_unchanged() -> None:
    api = OasstApiClientSync("http://127.0.0.1:9", API_KEY)
    real = api._client
    recorder = Recorder()
    api._client = recorder  # type: ignore[assignment]
    try:
        for name in public_async_methods():
            params = list(inspect.signature(getattr(OasstApiClientSync, name)).parameters.values())[1:]
            args: list[object] = []
            kwargs: dict[str, object] = {}
            for param in params:
                value = object()  # a distinct value per parameter: any mix-up shows
                if param.kind is param.KEYWORD_ONLY:
                    kwargs[param.name] = value
                else:
                    args.append(value)
            assert getattr(api, name)(*args, **kwargs) == ("result of", name)
            called, bound = recorder.calls[-1]
            assert called == name
            expected = dict(zip([p.name for p in params if p.kind is not p.KEYWORD_ONLY], args, strict=True))
            expected.update(kwargs)
            got = {k: v for k, v in bound.arguments.items() if k != "self"}
            assert got.keys() == expected.keys(), name
            assert all(got[k] is expected[k] for k in expected), name
        assert recorder.loop_thread == {"oasst-api-client"}
    finally:
        api._client = real
        api.close()


# ---------------------------------------------------------------------- against a real server


def test_a_call_returns_the_typed_result_and_sends_the_key(
    server: FaultServer, client: OasstApiClientSync
) -> None:
    server.script(respond_json(200, TASK_DONE))
    task = client.fetch_random_task(USER, lang="en")
    assert isinstance(task, protocol.TaskDone)
    assert str(task.id) == TASK_ID
    request = server.requests[-1]
    assert (request.method, request.path) == ("POST", "/api/v1/tasks/")
    assert request.headers["x-api-key"] == API_KEY


def test_errors_are_the_async_clients(server: FaultServer, client: OasstApiClientSync) -> None:
    server.script(respond_json(403, {"message": "Invalid API key", "error_code": 2}))
    with pytest.raises(OasstApiAuthError) as info:
        client.ack_task(TASK_ID, "frontend-1")
    assert info.value.error_code == OasstErrorCode.API_CLIENT_NOT_AUTHORIZED
    assert info.value.request == f"POST /api/v1/tasks/{TASK_ID}/ack"


def test_retries_happen_inside(server: FaultServer, client: OasstApiClientSync) -> None:
    server.script(respond(503, b"busy"), respond_json(200, TASK_DONE))
    assert isinstance(client.fetch_random_task(USER), protocol.TaskDone)
    assert len(server.requests) == 2


def test_the_timeout_holds(server: FaultServer) -> None:
    server.script(stall(10))
    with OasstApiClientSync(server.url, API_KEY, timeout=0.3, max_retries=0) as api:
        started = time.monotonic()
        with pytest.raises(OasstApiTimeoutError):
            api.fetch_task_availability()
        assert time.monotonic() - started < 3


def test_threads_share_one_client(server: FaultServer, client: OasstApiClientSync) -> None:
    server.script(*[respond_json(200, {"random": i}) for i in range(16)])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.fetch_task_availability(), range(16)))
    assert sorted(r["random"] for r in results) == list(range(16))
    assert len(server.requests) == 16


# ---------------------------------------------------------------------------- lifecycle


def test_close_stops_the_loop_and_later_calls_fail_clearly(server: FaultServer) -> None:
    before = len(loop_threads())
    api = OasstApiClientSync(server.url, API_KEY)
    assert len(loop_threads()) == before + 1
    assert not api.closed
    api.close()
    api.close()  # twice is fine
    assert api.closed
    assert api.client.session.is_closed
    assert len(loop_threads()) == before
    with pytest.raises(RuntimeError, match="OasstApiClientSync is closed"):
        api.fetch_task_availability()
    assert server.requests == []


def test_an_unclosed_client_is_cleaned_up_when_collected(server: FaultServer) -> None:
    before = len(loop_threads())
    api = OasstApiClientSync(server.url, API_KEY)
    session = api.client.session
    del api
    gc.collect()
    assert session.is_closed
    assert len(loop_threads()) == before


def test_bad_settings_raise_and_leave_no_thread() -> None:
    before = len(loop_threads())
    with pytest.raises(ValueError, match="backend_url"):
        OasstApiClientSync("localhost:8080", API_KEY)
    with pytest.raises(ValueError, match="timeout"):
        OasstApiClientSync("http://localhost:8080", API_KEY, timeout=0)
    assert len(loop_threads()) == before


def test_repr_never_shows_the_key() -> None:
    with OasstApiClientSync("http://localhost:8080", API_KEY) as api:
        text = repr(api)
    assert text.startswith("OasstApiClientSync(backend_url='http://localhost:8080'")
    assert API_KEY not in text and "<hidden>" in text


def test_a_script_that_never_closes_still_exits_at_once() -> None:
    script = (
        "from oasst_shared.api_client import OasstApiClientSync\n"
        "client = OasstApiClientSync('http://127.0.0.1:9', 'sk-x')\n"
    )
    started = time.monotonic()
    command = [sys.executable, "-W", "error::ResourceWarning", "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")  # no traceback, no warning from the cleanup
    assert time.monotonic() - started < 30
