from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fault_server import FaultServer, MockBackend, running_fault_server
from tests.specs import load_spec


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``pytest.mark.anyio`` test runs on both backends the client supports."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A scripted HTTP server on 127.0.0.1 (``tests/fault_server.py``)."""
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
