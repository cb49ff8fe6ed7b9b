"""Fixtures: the apps (subprocesses) the tests talk to, the chat API and workers.

Starting an app costs about 3 s of CPU, so the tests share one where they do not need their own:

* ``app``: one app with an embedded redis-server (no ``--redis-url``), shared by the session;
* ``ping_app``: one app pinging its workers and its event streams every 0.2 s
  (``--worker-ping-interval 0.2 --sse-ping-interval 0.2``) on a Redis of the tests
  (``ping_redis``), shared by the session;
* ``two_apps``: two app processes on one Redis of the tests, shared by the session;
* ``own_app``: an app of the test's own, started with the arguments of its
  ``@pytest.mark.app_args(...)`` (for what only a process of its own shows: SIGTERM, exit codes,
  ``--workers``, ``--chat-auth``); ``start_app(*args)`` starts one in the test itself.

Every one of them is launched ahead of need (``AppPool``: in the order the selected tests need
them, a few at a time) and stopped with SIGTERM at the end (a test's own app at the end of the
test, a shared one at the end of the session): each must exit 0 within the bound and leave none of
its processes (embedded redis-server, uvicorn workers) behind.

A shared app is handed to a test idle, and must be left idle: no worker connected, no event stream
open, no worker session in Redis, no work queued, and the work queue's counters even (so queue
positions count from 1 again). After each test the app is given time to notice the test's workers
and streams are gone, and work the test queued and left unanswered is served by a worker of the
fixture's own; a shared app that still is not idle fails the test (in its teardown) and is replaced
by a fresh one, so the tests after it do not depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.inference_server.harness import (
    API_KEYS,
    AppPool,
    AppProcess,
    AppSet,
    AppSpec,
    ChatApi,
    stop_all,
)
from tests.inference_server.worker import Worker
from tests.support.redis_server import RedisServer

MakeWorker = Callable[..., Worker]

HERE = Path(__file__).resolve().parent
KEY_ARGS = tuple(arg for key in API_KEYS for arg in ("--api-key", key))
PINGING = AppSpec(
    "ping-app", (*KEY_ARGS, "--worker-ping-interval", "0.2", "--sse-ping-interval", "0.2"), own_redis=True
)
SHARED = {
    # fixture -> what it runs
    "app": AppSpec("app", KEY_ARGS),
    "ping_app": PINGING,
    "ping_redis": PINGING,
    "two_apps": AppSpec("two-apps", KEY_ARGS, count=2, own_redis=True),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "app_args(*args): the command line of the test's own app (own_app)")


@pytest.fixture(scope="session")
def app_pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppPool]:
    """Every app the selected tests of this directory use, launched in the order they need them."""
    specs: dict[str, AppSpec] = {}
    for item in request.session.items:
        if HERE not in Path(item.path).resolve().parents:
            continue
        names = getattr(item, "fixturenames", ())
        for fixture, spec in SHARED.items():
            if fixture in names:
                specs.setdefault(spec.key, spec)
        if "own_app" in names:
            specs[item.nodeid] = AppSpec(item.nodeid, (*KEY_ARGS, *_app_args(item)))
    parallel = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pool = AppPool(list(specs.values()), log_dir=tmp_path_factory.mktemp("apps"), parallel=parallel)
    pool.start()
    yield pool
    problems = pool.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _app_args(item: pytest.Item) -> tuple[str, ...]:
    marker = item.get_closest_marker("app_args")
    return tuple(str(arg) for arg in marker.args) if marker is not None else ()


# --------------------------------------------------------------------------------- a test's apps


class AppsOfTest:
    """The apps one test uses: its own (``start_app(*args)``, ``adopt``: stopped and checked when
    it ends) and the shared ones (``share``: checked idle when it starts and when it ends)."""

    def __init__(self, log_dir: Path, pool: Callable[[], AppPool]) -> None:
        self.log_dir = log_dir
        self.pool = pool
        self.started: list[AppProcess] = []
        self.shared: dict[str, AppSet] = {}

    def __call__(
        self, *args: str, api_keys: tuple[str, ...] = API_KEYS, name: str | None = None
    ) -> AppProcess:
        """Start ``python -m examples.inference_server`` with the test API keys and ``*args``."""
        key_args = [arg for key in api_keys for arg in ("--api-key", key)]
        app = AppProcess(*key_args, *args, log_dir=self.log_dir, name=name or f"app{len(self.started)}")
        self.started.append(app)
        return app.start()

    def adopt(self, app: AppProcess) -> AppProcess:
        self.started.append(app)
        return app

    def share(self, key: str) -> AppSet:
        if key in self.shared:
            return self.shared[key]
        app_set = self.pool().get(key)
        problems = app_set.idle().problems()
        if problems:  # (never left so by a test: that one failed and replaced it)
            problems += self.pool().retire(key)
            pytest.fail(f"the shared app {key} was not idle: {problems}", pytrace=False)
        self.shared[key] = app_set
        return app_set

    def finish(self) -> list[str]:
        problems = []
        for key, app_set in self.shared.items():
            left = app_set.idle().settle()
            if left:
                problems.append(f"the test left the shared app {key} not idle: {left}")
                problems += self.pool().retire(key)
        # never started, or the test stopped it and checked it
        problems += stop_all(
            [app for app in self.started if app.proc is not None and app.proc.poll() is None]
        )
        return problems


StartApp = AppsOfTest


@pytest.fixture
def start_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppsOfTest]:
    """``start_app(*args)``: start an app of the test's own with the test API keys and ``*args``.

    On teardown every app of the test's own still running gets SIGTERM; the test fails (in
    teardown) unless each exits 0 within the bound and leaves none of its processes (embedded
    redis-server, uvicorn workers) behind, and unless each shared app it used is left idle."""
    apps = AppsOfTest(tmp_path, lambda: request.getfixturevalue("app_pool"))
    yield apps
    problems = apps.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def app(start_app: AppsOfTest) -> AppProcess:
    """The shared app with an embedded redis-server (no ``--redis-url``)."""
    return start_app.share("app").apps[0]


@pytest.fixture
def ping_app(start_app: AppsOfTest) -> AppProcess:
    """The shared app started with ``--worker-ping-interval 0.2 --sse-ping-interval 0.2``."""
    return start_app.share("ping-app").apps[0]


@pytest.fixture
def ping_redis(start_app: AppsOfTest) -> RedisServer:
    """``ping_app``'s Redis (``tests/support/redis_server.py``)."""
    redis_server = start_app.share("ping-app").redis
    assert redis_server is not None
    return redis_server


@pytest.fixture
def two_apps(start_app: AppsOfTest) -> tuple[AppProcess, AppProcess]:
    """Two shared app processes on one Redis."""
    first, second = start_app.share("two-apps").apps
    return first, second


@pytest.fixture
def own_app(start_app: AppsOfTest, request: pytest.FixtureRequest) -> AppProcess:
    """An app of the test's own, started with ``@pytest.mark.app_args(...)`` (launched ahead)."""
    pool: AppPool = request.getfixturevalue("app_pool")
    if request.node.nodeid in pool.specs:
        return start_app.adopt(pool.take(request.node.nodeid))
    return start_app(*_app_args(request.node))


@pytest.fixture
def api(app: AppProcess) -> Iterator[ChatApi]:
    client = ChatApi(app.url)
    yield client
    client.close()


@pytest.fixture
def make_worker(start_app: AppsOfTest) -> Iterator[MakeWorker]:
    """``make_worker(app_url, **options)``: a started :class:`Worker` (closed before the apps stop
    and before the shared ones are checked idle)."""
    workers: list[Worker] = []

    def make(base_url: str, *, start: bool = True, **options: Any) -> Worker:
        options.setdefault("api_key", API_KEYS[0])
        worker = Worker(base_url, **options)
        workers.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in workers:
        worker.close()
