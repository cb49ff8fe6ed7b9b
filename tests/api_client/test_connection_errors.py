"""A connection error names the server it tried (``scheme://host:port``), and an uncaught one
names the public module of its class (``oasst_shared.api_client``), not the private one."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import httpx
import pytest

from oasst_shared.api_client import (
    OasstApiClient,
    OasstApiClientSync,
    OasstApiConnectionError,
    OasstApiTimeoutError,
)
from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(60)


def _closed_port() -> int:
    """A local TCP port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_refused_connection_names_the_scheme_host_and_port() -> None:
    port = _closed_port()
    with (
        OasstApiClientSync(f"http://127.0.0.1:{port}", "k", max_retries=0) as client,
        pytest.raises(OasstApiConnectionError) as caught,
    ):
        client.fetch_system_stats()
    error = caught.value
    assert type(error) is OasstApiConnectionError
    assert error.request_sent is False
    assert f"could not connect to http://127.0.0.1:{port} (" in str(error)
    assert str(error).startswith("GET /api/v1/stats/: ")


def _raising(exc_type: type[httpx.TransportError]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("why", request=request)

    return httpx.MockTransport(handler)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("backend_url", "server"),
    [
        ("http://backend.example", "http://backend.example:80"),
        ("https://backend.example/base", "https://backend.example:443"),
        ("https://user:secret@backend.example:8443", "https://backend.example:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
@pytest.mark.parametrize(
    ("exc_type", "error_type", "wording"),
    [
        (
            httpx.ConnectError,
            OasstApiConnectionError,
            "could not connect to {server} (why)",
        ),
        (
            httpx.ReadError,
            OasstApiConnectionError,
            "connection to {server} failed before the answer was complete (ReadError: why)",
        ),
        (httpx.ConnectTimeout, OasstApiTimeoutError, "timed out talking to {server} (ConnectTimeout: "),
        (httpx.ReadTimeout, OasstApiTimeoutError, "timed out talking to {server} (ReadTimeout: "),
    ],
)
async def test_every_transport_error_names_the_server_never_its_credentials(
    backend_url: str,
    server: str,
    exc_type: type[httpx.TransportError],
    error_type: type[OasstApiConnectionError],
    wording: str,
) -> None:
    client = OasstApiClient(backend_url, "k", max_retries=0, transport=_raising(exc_type))
    async with client:
        with pytest.raises(OasstApiConnectionError) as caught:
            await client.fetch_system_stats()
    assert type(caught.value) is error_type
    assert wording.format(server=server) in str(caught.value)
    assert "secret" not in str(caught.value)


def test_an_uncaught_connection_error_names_its_public_module() -> None:
    port = _closed_port()
    script = textwrap.dedent(
        f"""
        from oasst_shared.api_client import OasstApiClientSync

        with OasstApiClientSync("http://127.0.0.1:{port}", "k", max_retries=0) as client:
            client.fetch_system_stats()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"oasst_shared.api_client.OasstApiConnectionError: GET /api/v1/stats/: "
        f"could not connect to http://127.0.0.1:{port} ("
    ), last
    assert "_errors" not in last
