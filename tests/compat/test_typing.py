"""mypy sees the views' fields, the ``model_config`` attribute and the tag Literals, as a consumer
would use them (strict mode, on a snippet in a temporary folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.generate_views import COMPAT_ROOT

COMPAT_DIR = COMPAT_ROOT.parent

CONSUMER = """
from pydantic import TypeAdapter

from oasst_compat.model_configs import MODEL_CONFIGS, ModelConfig
from oasst_compat.schemas import inference, protocol

config = inference.WorkerConfig(model_config=ModelConfig(model_id="x"), max_parallel_requests=2)
reveal_type(config.model_config)
reveal_type(config.model_config.max_input_length)
params = inference.WorkParameters(model_config=MODEL_CONFIGS["_lorem"])
params.model_config = ModelConfig(model_id="y")
reveal_type(params.seed)
task = TypeAdapter(protocol.AnyTask).validate_json(b"{}")
if isinstance(task, protocol.PrompterReplyTask):
    reveal_type(task.type)
    reveal_type(task.conversation.is_prompter_turn)
reveal_type(inference.WorkerHardwareInfo.collect())
reveal_type(inference.TokenResponse.parse_raw("{}"))
reveal_type(len(protocol.Conversation()))
"""

MISUSE = """
from oasst_compat.model_configs import ModelConfig
from oasst_compat.schemas import inference

inference.TokenResponse(text=1, token_id=2)
inference.WorkerConfig(model_config=ModelConfig(model_id="x")).model_config.no_such_field
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    snippet = tmp_path / "consumer.py"
    snippet.write_text(textwrap.dedent(source), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-error-summary",
        "--config-file=",
        f"--cache-dir={tmp_path / 'cache'}",
        str(snippet),
    ]
    env = {**os.environ, "MYPYPATH": str(COMPAT_DIR)}
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path, env=env)


def test_mypy_sees_the_views(tmp_path: Path) -> None:
    result = _mypy(tmp_path, CONSUMER)
    assert result.returncode == 0, result.stdout + result.stderr
    revealed = [
        line.split("Revealed type is ")[1] for line in result.stdout.splitlines() if "Revealed" in line
    ]
    assert revealed == [
        '"oasst_compat.model_configs.ModelConfig"',
        '"int"',
        '"int"',
        "\"Literal['prompter_reply']\"",
        '"bool"',
        '"oasst_compat.schemas.inference.WorkerHardwareInfo"',
        '"oasst_compat.schemas.inference.TokenResponse"',
        '"int"',
    ]


def test_mypy_catches_misuse(tmp_path: Path) -> None:
    result = _mypy(tmp_path, MISUSE)
    assert result.returncode == 1
    assert 'Argument "text" to "TokenResponse" has incompatible type "int"' in result.stdout
    assert '"ModelConfig" has no attribute "no_such_field"' in result.stdout
