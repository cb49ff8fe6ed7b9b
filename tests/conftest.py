from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.backend_mock import PRISM_BIN, PRISM_MISSING_MESSAGE, MockServer, start_prism, stop_prism
from tests.support.fault_server import FaultServer, MockBackend, running_fault_server
from tests.support.specs import load_spec, specs_dir


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``pytest.mark.anyio`` test runs on both backends the client supports."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A scripted HTTP server on 127.0.0.1 (``tests/support/fault_server.py``)."""
    with running_fault_server() as srv:
        yield srv


@pytest.fixture
def backend() -> MockBackend:
    """Scripted answers without a socket: give the client ``transport=backend.transport``."""
    return MockBackend()


@pytest.fixture(scope="session")
def ref_models() -> Any:
    """The reference models spec (oasst-reference-models.json)."""
    return load_spec("oasst-reference-models.json")


@pytest.fixture(scope="session")
def backend_openapi() -> Any:
    """The backend's OpenAPI document (backend-openapi.json)."""
    return load_spec("backend-openapi.json")


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """prism (``tests/support/backend_mock.py``) serving the backend's OpenAPI document on
    127.0.0.1, one for the whole session: every request is checked against the spec."""
    if not PRISM_BIN.exists():
        pytest.fail(PRISM_MISSING_MESSAGE, pytrace=False)
    server = start_prism(specs_dir() / "backend-openapi.json", tmp_path_factory.mktemp("prism"))
    yield server
    stop_prism(server)
