"""A missing optional dependency says which extra installs it; the core needs none of them.

Each case runs in a fresh interpreter where the dependency is hidden (``sys.modules[name] =
None`` makes every import of it fail as if it were not installed).
"""

from __future__ import annotations

import pytest

from tests.support.processes import run_python


@pytest.mark.parametrize(
    "statement",
    [
        "import oasst_compat",
        "from oasst_compat.schemas import inference",
        "import oasst_compat.model_configs",
    ],
)
def test_the_views_without_pydantic_name_the_extra(statement: str) -> None:
    result = run_python(statement, hidden=("pydantic",))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: oasst_compat (the Pydantic views) needs pydantic, which is not installed: "
        "pip install 'oasst-shared[pydantic]'"
    )


def test_the_error_is_still_a_module_not_found_error_for_pydantic() -> None:
    code = (
        "try:\n    import oasst_compat\n"
        "except ModuleNotFoundError as exc:\n    print(exc.name, type(exc.__cause__).__name__)\n"
    )
    result = run_python(code, hidden=("pydantic",))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pydantic", "ModuleNotFoundError"]


def test_the_core_needs_no_optional_dependency() -> None:
    """Schemas, codec, API client, CLI, model configs and hardware import and work with pydantic,
    redis, psutil and NVML all missing."""
    code = (
        "from oasst_shared import codec\n"
        "from oasst_shared.schemas import inference, protocol\n"
        "from oasst_shared.api_client import OasstApiClient\n"
        "from oasst_shared.model_configs import MODEL_CONFIGS\n"
        "import oasst_shared.cli\n"
        "from oasst_shared.hardware import collect_hardware_info\n"
        "token = inference.TokenResponse(request_id='r', text='a', token_id=1)\n"
        "frame = codec.worker_response.encode(token)\n"
        "print(codec.worker_response.decode(frame).text, len(MODEL_CONFIGS) > 0)\n"
        "print(type(collect_hardware_info()).__name__)\n"
    )
    result = run_python(code, hidden=("pydantic", "redis", "hiredis", "psutil", "pynvml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["a", "True", "WorkerHardwareInfo"]
