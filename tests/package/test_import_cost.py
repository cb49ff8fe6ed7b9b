"""Importing the schemas pulls in msgspec and nothing heavy (DESIGN.md, "Import cost counts").

Checked in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json

import pytest

from tests.support.processes import run_python

HEAVY = ("pydantic", "pydantic_core", "httpx", "psutil", "pynvml", "anyio")

_PROBE = """
import json, sys
for name in {modules!r}:
    __import__(name)
{use}
heavy = {heavy!r}
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in heavy)
found = loaded()
hardware = "oasst_shared.hardware" in sys.modules
# the probe can see a heavy import when there is one
import psutil
print(json.dumps({{"found": found, "hardware": hardware, "probe_works": "psutil" in loaded()}}))
"""

# What a worker does with the schemas once imported: none of it may import more.
_USE = """
import msgspec
from oasst_shared.schemas import inference, protocol
frame = inference.TokenResponse(request_id="r", text="t", token_id=1).json()
msgspec.json.decode(frame, type=inference.WorkerResponse)
inference.WorkerResponse
protocol.TaskDone().json()
"""


def run_probe(modules: tuple[str, ...], use: str = "") -> dict[str, object]:
    code = _PROBE.format(modules=modules, heavy=HEAVY, use=use)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "modules",
    [
        ("oasst_shared",),
        ("oasst_shared.schemas.inference",),
        ("oasst_shared.schemas.protocol",),
        ("oasst_shared.model_configs",),
        ("oasst_shared.schemas.inference", "oasst_shared.schemas.protocol"),
    ],
    ids="+".join,
)
def test_schema_imports_are_light(modules: tuple[str, ...]) -> None:
    report = run_probe(modules)
    assert report["probe_works"] is True
    assert report["found"] == []
    assert report["hardware"] is False


def test_using_the_schemas_stays_light() -> None:
    """Encoding and decoding (not only importing) must not pull in anything heavy either."""
    report = run_probe(("oasst_shared.schemas.inference", "oasst_shared.schemas.protocol"), _USE)
    assert report["probe_works"] is True
    assert report["found"] == []
    assert report["hardware"] is False


def test_async_client_users_do_not_load_the_blocking_facade() -> None:
    code = (
        "import sys\n"
        "import oasst_shared.api_client as api\n"
        "before = 'anyio.from_thread' in sys.modules\n"
        "cls = api.OasstApiClientSync\n"
        "print(before, 'anyio.from_thread' in sys.modules, cls.__name__)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "OasstApiClientSync"]
