"""The ``oasst-shared`` command line, run as a real program (console script and ``python -m``)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oasst_shared import model_configs
from oasst_shared.cli.validate import InvalidMessage, MessageValidator, read_line_batches
from oasst_shared.schemas import inference
from oasst_shared.schemas.json_schema import SCHEMA_DEVIATIONS
from tests.support import factories
from tests.support.specs import REPO_ROOT

BIN_DIR = Path(sys.executable).parent
SCRIPT = shutil.which("oasst-shared", path=str(BIN_DIR))
MODULE = [sys.executable, "-m", "oasst_shared"]
REQUEST_ID = "5b1f0e2c-8f0e-4c55-9a57-3c1d2f8b9e01"

_encode = msgspec.json.Encoder().encode


def _script() -> list[str]:
    if SCRIPT is None:
        pytest.fail(f"no `oasst-shared` console script in {BIN_DIR}: run `make install` (pip install -e .)")
    return [SCRIPT]


@pytest.fixture(params=["console-script", "python-m"])
def cli(request: pytest.FixtureRequest) -> list[str]:
    """The command, both ways it is installed."""
    return _script() if request.param == "console-script" else MODULE


def run(
    command: Sequence[str], *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, timeout=120, cwd=cwd, check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


# ---------------------------------------------------------------------------- realistic frames


def token_frame(i: int, text: str = " word") -> bytes:
    return _encode(
        inference.TokenResponse(request_id=REQUEST_ID, text=text, log_prob=-0.25 * (i % 7), token_id=1000 + i)
    )


def generation_frames(n_tokens: int) -> list[bytes]:
    """What a worker sends for one WorkRequest: safe prompt, tokens, the generated text."""
    frames = [
        _encode(
            inference.SafePromptResponse(
                request_id=REQUEST_ID,
                safe_prompt="Tell me about llamas.",
                safety_parameters=inference.SafetyParameters(level=2),
                safety_label="__casual__",
                safety_rots="",
            )
        )
    ]
    frames += [token_frame(i) for i in range(n_tokens)]
    frames.append(
        _encode(
            inference.GeneratedTextResponse(
                request_id=REQUEST_ID,
                text=" word" * n_tokens,
                finish_reason="eos_token",
                metrics=factories.metrics_info(),
            )
        )
    )
    return frames


def _generated_text_dict() -> dict[str, Any]:
    frame: dict[str, Any] = msgspec.json.decode(generation_frames(1)[-1])
    return frame


def broken_capture() -> tuple[bytes, list[tuple[int, str, str, str]], int]:
    """A capture with broken frames: (bytes, [(line, label, path, message fragment)], valid count)."""
    bad_metrics = _generated_text_dict()
    bad_metrics["metrics"]["cpu_usage"] = "high"
    bad_gpu = _generated_text_dict()
    bad_gpu["metrics"]["gpus"][0]["gpu_usage"] = None
    missing_token_id = msgspec.json.decode(token_frame(1))
    del missing_token_id["token_id"]
    invalid_utf8 = token_frame(2, text="caf\u00e9").replace("caf\u00e9".encode(), b"caf\xe9")
    utf8_error_at = invalid_utf8.index(b"\xe9")
    deep = token_frame(3)[:-1] + b',"extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    lines: list[tuple[bytes, tuple[str, str, str] | None]] = [
        (token_frame(0), None),
        (b"", None),
        (
            _encode(bad_metrics),
            ("GeneratedTextResponse", "$.metrics.cpu_usage", "Expected `float`, got `str`"),
        ),
        (
            _encode(bad_gpu),
            ("GeneratedTextResponse", "$.metrics.gpus[0].gpu_usage", "Expected `float`, got `null`$"),
        ),
        (
            token_frame(4).replace(b'"token"', b'"tokens"'),
            ("message", "$.response_type", "Invalid value 'tokens'$"),
        ),
        (token_frame(5)[:40], ("message", "$", r"Input data was truncated at column 41 \(byte 40\)$")),
        (
            invalid_utf8,
            (
                "TokenResponse",
                "$",
                rf"Invalid UTF-8: .* at column {utf8_error_at + 1} \(byte {utf8_error_at}\)$",
            ),
        ),
        (b"   ", None),
        (_encode(missing_token_id), ("TokenResponse", "$.token_id", "missing required field `token_id`$")),
        (deep, ("message", "$", "Input nested too deeply to decode as `WorkerResponse`$")),
        (token_frame(6) + b"\r", None),
        (generation_frames(0)[-1], None),
    ]
    expected = [(number, *error) for number, (_, error) in enumerate(lines, start=1) if error is not None]
    valid = sum(1 for line, error in lines if error is None and line.strip())
    return b"\n".join(line for line, _ in lines) + b"\n", expected, valid


# ---------------------------------------------------------------------------------- validate


def test_valid_capture_exits_0_with_counts_per_member_type(cli: list[str], tmp_path: Path) -> None:
    capture = tmp_path / "worker.ndjson"
    capture.write_bytes(b"\n".join(generation_frames(50) + generation_frames(20)) + b"\n")
    result = run(cli, "validate", "inference.WorkerResponse", str(capture))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"summary: 74 messages in {capture}, 74 valid, 0 invalid; TokenResponse: 70 valid; "
        "GeneratedTextResponse: 2 valid; SafePromptResponse: 2 valid\n"
    )
    assert result.stderr == ""


def test_every_invalid_line_is_reported_and_the_run_goes_on(cli: list[str], tmp_path: Path) -> None:
    data, expected, valid = broken_capture()
    capture = tmp_path / "broken.ndjson"
    capture.write_bytes(data)
    result = run(cli, "validate", "inference.WorkerResponse", str(capture))
    assert result.returncode == 1
    *errors, summary = result.stdout.splitlines()
    assert len(errors) == len(expected)
    for error, (line, label, path, fragment) in zip(errors, expected, strict=True):
        assert error.startswith(f"{capture}:{line}: invalid {label} at {path}: "), error
        assert re.search(fragment, error), (fragment, error)
    assert summary == (
        f"summary: {valid + len(expected)} messages in {capture}, {valid} valid, {len(expected)} invalid; "
        "TokenResponse: 2 valid, 2 invalid; GeneratedTextResponse: 1 valid, 2 invalid; unknown: 3 invalid"
    )
    assert result.stderr == ""


def test_stdin_input_with_dash_and_by_default(tmp_path: Path) -> None:
    data, expected, valid = broken_capture()
    with_dash = run(_script(), "validate", "inference.WorkerResponse", "-", stdin=data)
    by_default = run(MODULE, "validate", "inference.WorkerResponse", stdin=data)
    assert with_dash.returncode == by_default.returncode == 1
    assert with_dash.stdout == by_default.stdout
    assert with_dash.stdout.startswith(f"<stdin>:{expected[0][0]}: invalid ")
    assert f"summary: {valid + len(expected)} messages in <stdin>," in with_dash.stdout


def test_max_errors_limits_the_detail_not_the_count(tmp_path: Path) -> None:
    data, expected, _ = broken_capture()
    result = run(_script(), "validate", "inference.WorkerResponse", "--max-errors", "2", stdin=data)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert len(lines) == 4
    assert lines[2] == f"<stdin>: {len(expected) - 2} more invalid messages not shown (--max-errors 2)"
    assert f"{len(expected)} invalid" in lines[3]


def test_a_pretty_printed_document_is_one_message(tmp_path: Path) -> None:
    document = tmp_path / "frame.json"
    document.write_text(json.dumps(_generated_text_dict(), indent=2))
    result = run(_script(), "validate", "inference.WorkerResponse", str(document))
    assert result.returncode == 0, result.stdout
    assert result.stdout.endswith(
        "1 message in " + str(document) + ", 1 valid, 0 invalid; GeneratedTextResponse: 1 valid\n"
    )

    broken = _generated_text_dict()
    broken["finish_reason"] = "tired"
    document.write_text("\ufeff\n" + json.dumps(broken, indent=4) + "\n\n", encoding="utf-8")
    result = run(_script(), "validate", "inference.WorkerResponse", str(document))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{document}:2: invalid GeneratedTextResponse at $.finish_reason: ")
    assert "GeneratedTextResponse: 1 invalid" in result.stdout


def test_a_truncated_first_line_does_not_hide_the_other_lines(tmp_path: Path) -> None:
    capture = tmp_path / "cut.ndjson"
    capture.write_bytes(
        token_frame(0)[:25] + b"\n" + token_frame(1) + b"\n" + token_frame(2).replace(b"1002", b'"x"')
    )
    result = run(_script(), "validate", "inference.WorkerResponse", str(capture))
    errors = result.stdout.splitlines()[:-1]
    assert result.returncode == 1
    assert [e.split(" at ")[0] for e in errors] == [
        f"{capture}:1: invalid message",
        f"{capture}:3: invalid TokenResponse",
    ]
    assert "TokenResponse: 1 valid, 1 invalid; unknown: 1 invalid" in result.stdout


def test_single_struct_types_and_model_configs(tmp_path: Path) -> None:
    labels = {
        "type": "text_labels",
        "user": {"id": "1234", "display_name": "Ada", "auth_method": "discord"},
        "text": "Llamas are camelids.",
        "labels": {"spam": 0.0, "quality": 0.75},
        "message_id": "6f1c2d3e-0000-4000-8000-000000000001",
    }
    too_high = {**labels, "labels": {"spam": 1.5}}
    unknown_label = {**labels, "labels": {"shouting": 0.5}}
    data = b"\n".join(_encode(x) for x in (labels, too_high, unknown_label)) + b"\n"
    result = run(_script(), "validate", "protocol.TextLabels", stdin=data)
    assert result.returncode == 1
    errors = result.stdout.splitlines()
    assert errors[0].startswith("<stdin>:2: invalid TextLabels at $.labels[...]: Expected `float` <= 1.0")
    assert errors[1].startswith(
        "<stdin>:3: invalid TextLabels at $.labels: Invalid enum value 'shouting' (in a key)"
    )
    assert errors[2] == "summary: 3 messages in <stdin>, 1 valid, 2 invalid; TextLabels: 1 valid, 2 invalid"

    configs = [_encode(config) for config in model_configs.MODEL_CONFIGS.values()]
    result = run(_script(), "validate", "model_configs.ModelConfig", stdin=b"\n".join(configs))
    assert result.returncode == 0
    assert f"ModelConfig: {len(configs)} valid" in result.stdout


def test_empty_input_has_nothing_invalid() -> None:
    result = run(_script(), "validate", "protocol.AnyTask", stdin=b"\n \n")
    assert result.returncode == 0
    assert result.stdout == "summary: 0 messages in <stdin>, 0 valid, 0 invalid\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["validate", "inference.WorkerRespons", "x.ndjson"], "did you mean inference.WorkerResponse"),
        (["validate", "inference.WorkerResponse", "missing.ndjson"], "cannot read 'missing.ndjson'"),
        (["validate", "inference.WorkerResponse", "."], "cannot read '.': Is a directory"),
        (["validate", "protocol.AnyTask", "-", "--max-errors", "-1"], "--max-errors must be >= 0"),
        (["schema", "protocol.Nope"], "unknown message type 'protocol.Nope'"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_2(
    cli: list[str], tmp_path: Path, args: list[str], fragment: str
) -> None:
    result = run(cli, *args, stdin=b"", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("oasst-shared: error: ")
    assert fragment in result.stderr


def test_unknown_type_says_how_to_list_valid_names() -> None:
    result = run(_script(), "validate", "Bogus", stdin=b"{}")
    assert result.returncode == 2
    assert "`oasst-shared types` lists the valid names" in result.stderr


ABSTRACT_BASES = [
    ("Task", "protocol.Task", "protocol.AnyTask", b'{"type":"bogus","foo":1}'),
    ("protocol.AbstractRatingTask", "protocol.AbstractRatingTask", "protocol.AnyTask", b'{"type":"x"}'),
    ("protocol.AbstractLabelTask", "protocol.AbstractLabelTask", "protocol.AnyTask", b"{}"),
    ("Interaction", "protocol.Interaction", "protocol.AnyInteraction", b'{"type":"bogus"}'),
    ("WorkerRequestBase", "inference.WorkerRequestBase", "inference.WorkerRequest", b"{}"),
    ("inference.WorkerResponseBase", "inference.WorkerResponseBase", "inference.WorkerResponse", b"{}"),
]


@pytest.mark.parametrize(
    ("given", "name", "union", "stdin"), ABSTRACT_BASES, ids=[b[0] for b in ABSTRACT_BASES]
)
def test_an_abstract_base_is_refused_naming_the_union_to_use(
    given: str, name: str, union: str, stdin: bytes
) -> None:
    """`validate Task` used to pass anything (`{"type":"bogus"}`, `{}`): a base is never sent alone."""
    result = run(_script(), "validate", given, "-", stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"oasst-shared: error: {name} is an abstract base, never sent on its own")
    assert f"validate with the union {union} " in result.stderr


def test_every_base_of_a_union_member_is_refused_and_every_sendable_type_is_not() -> None:
    from oasst_shared.cli.validate import abstract_base_union
    from oasst_shared.schemas._registry import ABSTRACT_BASES as REGISTERED_BASES
    from oasst_shared.schemas._registry import message_types

    refused = {name for name, tp in message_types().items() if abstract_base_union(tp) is not None}
    assert refused == {name for _, name, _, _ in ABSTRACT_BASES}
    assert set(REGISTERED_BASES) <= refused
    # the unions and their members (ReplyToConversationTask is both a member and a base) stay
    for name in ("protocol.AnyTask", "inference.WorkerResponse", "protocol.ReplyToConversationTask"):
        assert abstract_base_union(message_types()[name]) is None


def test_validate_takes_one_type_then_any_number_of_files(tmp_path: Path) -> None:
    frames = REPO_ROOT / "examples" / "frames"
    tasks = [str(frames / "initial_prompt_task.json"), str(frames / "assistant_reply_task.json")]
    broken = tmp_path / "broken_task.ndjson"
    broken.write_bytes(b'{"type": "initial_prompt", "hint": 3}\n')
    result = run(_script(), "validate", "protocol.AnyTask", *tasks, str(broken))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"summary: 1 message in {tasks[0]}, 1 valid, 0 invalid; InitialPromptTask: 1 valid",
        f"summary: 1 message in {tasks[1]}, 1 valid, 0 invalid; AssistantReplyTask: 1 valid",
        f"{broken}:1: invalid InitialPromptTask at $.hint: Expected `str | null`, got `int`",
        f"summary: 1 message in {broken}, 0 valid, 1 invalid; InitialPromptTask: 1 invalid",
        "total: 3 messages in 3 files, 2 valid, 1 invalid; InitialPromptTask: 1 valid, 1 invalid; "
        "AssistantReplyTask: 1 valid",
    ]
    assert result.stderr == ""

    # an unreadable FILE is an error on stderr; the other FILEs are still validated
    result = run(
        _script(), "validate", "protocol.AnyTask", tasks[0], str(tmp_path / "missing.json"), tasks[1]
    )
    assert result.returncode == 2
    assert (
        result.stderr
        == f"oasst-shared: error: cannot read {str(tmp_path / 'missing.json')!r}: No such file or directory\n"
    )
    assert result.stdout.splitlines()[-1].startswith(
        "total: 2 messages in 2 files (1 more not readable), 2 valid, 0 invalid"
    )

    usage = run(_script(), "validate", "--help").stdout
    assert usage.startswith("usage: oasst-shared validate [-h] [--max-errors N] TYPE [FILE ...]\n")
    assert "the first argument is the TYPE, all the others are FILEs" in usage


def test_a_file_given_where_the_type_belongs_is_named_and_the_usage_explained() -> None:
    """`oasst-shared validate examples/frames/*.json`: the shell puts a file where TYPE belongs."""
    frames = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "examples" / "frames").glob("*.json"))
    result = run(_script(), "validate", *frames, cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"oasst-shared: error: {frames[0]!r} is a file, not a message type: "
        "validate takes the TYPE first, then the FILEs (`oasst-shared validate TYPE [FILE ...]`"
    )
    assert "`oasst-shared types` lists the types" in result.stderr
    # the example names the union the file's first message belongs to
    work = run(_script(), "validate", "examples/frames/work_request.json", cwd=REPO_ROOT)
    assert "e.g. `oasst-shared validate inference.WorkerRequest examples/frames/work_request.json ...`" in (
        work.stderr
    )


def _cut(text: str, at: int) -> tuple[str, int, int]:
    """``text[:at]``, and the line and column where it ends (1-based)."""
    head = text[:at]
    return head, head.count("\n") + 1, len(head) - (head.rfind("\n") + 1) + 1


def test_a_truncated_pretty_printed_document_is_one_error(tmp_path: Path) -> None:
    text = (REPO_ROOT / "examples" / "frames" / "work_request.json").read_text(encoding="utf-8")
    head, line, column = _cut(text, len(text) // 2)
    document = tmp_path / "cut.json"
    document.write_text(head, encoding="utf-8")
    result = run(_script(), "validate", "inference.WorkerRequest", str(document))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{document}:1: invalid message at $: truncated JSON document (from line 1): the input ends "
        f"inside it, at line {line}, column {column} (byte {len(head.encode())})",
        f"summary: 1 message in {document}, 0 valid, 1 invalid; unknown: 1 invalid",
    ]

    # after blank lines, the lines and bytes are still those of the file
    document.write_text("\n\n" + head, encoding="utf-8")
    result = run(_script(), "validate", "inference.WorkerRequest", str(document))
    assert result.stdout.splitlines()[0] == (
        f"{document}:3: invalid message at $: truncated JSON document (from line 3): the input ends "
        f"inside it, at line {line + 2}, column {column} (byte {len(head.encode()) + 2})"
    )


def test_a_malformed_pretty_printed_document_is_one_error(tmp_path: Path) -> None:
    frames = REPO_ROOT / "examples" / "frames"
    lines = (frames / "work_request.json").read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(i for i, text in enumerate(lines) if i > 2 and text.endswith(",\n"))
    lines[cut] = lines[cut][:-2] + "\n"  # a comma left out: the next line is where it breaks
    next_line = lines[cut + 1]
    column = len(next_line) - len(next_line.lstrip()) + 1
    byte = len("".join(lines[: cut + 1]).encode()) + column - 1
    document = tmp_path / "no_comma.json"
    document.write_text("".join(lines), encoding="utf-8")
    result = run(_script(), "validate", "inference.WorkerRequest", str(document))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{document}:1: invalid message at $: malformed JSON document (from line 1): expected ',' or '}}' "
        f"at line {cut + 2}, column {column} (byte {byte})",
        f"summary: 1 message in {document}, 0 valid, 1 invalid; unknown: 1 invalid",
    ]

    first = (frames / "initial_prompt_task.json").read_text(encoding="utf-8")
    document = tmp_path / "two.json"  # two pretty-printed documents in one file
    document.write_text(first + (frames / "assistant_reply_task.json").read_text(encoding="utf-8"))
    result = run(_script(), "validate", "protocol.AnyTask", str(document))
    assert result.returncode == 1
    errors = result.stdout.splitlines()[:-1]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"{document}:1: invalid message at $: malformed JSON document (from line 1): trailing characters "
        f"at line {first.count(chr(10)) + 1}, column "
    )


def test_usage_errors_exit_2() -> None:
    assert run(_script()).returncode == 2
    assert run(_script(), "validate").returncode == 2
    assert run(_script(), "types", "--bogus").returncode == 2


# ------------------------------------------------------------------------------ big captures


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """About 50 MB of token frames; the last line is invalid."""
    block = b"\n".join(token_frame(i) for i in range(1000)) + b"\n"
    repeats = 50_000_000 // len(block)
    path = tmp_path_factory.mktemp("big") / "tokens.ndjson"
    with path.open("wb") as f:
        for _ in range(repeats):
            f.write(block)
        f.write(token_frame(0).replace(b'"token_id":1000', b'"token_id":-0.5') + b"\n")
    return path, repeats * 1000 + 1


def _run_measured(command: Sequence[str], out: Path) -> tuple[int, int, str, str]:
    """(exit status, peak RSS in bytes, stdout, stderr) of one child, measured with wait4."""
    with out.with_suffix(".out").open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return (
        proc.returncode,
        usage.ru_maxrss * scale,
        out.with_suffix(".out").read_text(),
        out.with_suffix(".err").read_text(),
    )


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="os.wait4 (peak RSS of one child) is POSIX only")
def test_a_large_capture_streams_in_constant_memory(big_capture: tuple[Path, int], tmp_path: Path) -> None:
    path, count = big_capture
    small = tmp_path / "small.ndjson"
    small.write_bytes(b"\n".join(generation_frames(10)) + b"\n")
    command = [*_script(), "validate", "inference.WorkerResponse"]
    status, baseline_rss, _, _ = _run_measured([*command, str(small)], tmp_path / "small")
    assert status == 0
    status, big_rss, stdout, stderr = _run_measured([*command, str(path)], tmp_path / "big")
    assert status == 1
    assert stdout.splitlines()[0].startswith(f"{path}:{count}: invalid TokenResponse at $.token_id: ")
    assert stdout.splitlines()[1].startswith(
        f"summary: {count} messages in {path}, {count - 1} valid, 1 invalid"
    )
    assert stderr == "", "no progress when stderr is not a terminal"
    size = path.stat().st_size
    assert size > 45_000_000
    assert big_rss - baseline_rss < 24 << 20, (
        f"RSS grew by {(big_rss - baseline_rss) >> 20} MiB on {size >> 20} MiB"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX only")
def test_progress_is_shown_on_a_terminal(big_capture: tuple[Path, int], tmp_path: Path) -> None:
    import pty

    path, _ = big_capture
    leader, follower = pty.openpty()
    with (tmp_path / "out").open("wb") as stdout:
        proc = subprocess.Popen(
            [*_script(), "validate", "inference.WorkerResponse", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=follower,
        )
    os.close(follower)
    shown = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(leader)
    assert proc.wait(timeout=120) == 1
    assert b" MiB / " in shown
    assert b"%), " in shown
    assert b" messages" in shown
    assert shown.endswith(b"\r\x1b[K"), "the progress line is erased at the end"
    assert (tmp_path / "out").read_text().count("\n") == 2


# ------------------------------------------------------------------------------ schema, types


def _spec_models(ref_models: Any) -> dict[str, dict[str, Any]]:
    return {
        f"{module}.{name}": model["json_schema"]
        for module, content in ref_models["modules"].items()
        for name, model in content["models"].items()
    }


def _expected_required(name: str, reference: dict[str, Any]) -> set[str]:
    required = set(reference.get("required", []))
    deviation = SCHEMA_DEVIATIONS.get(name)
    if deviation is not None:
        required = (required - deviation.required_in_reference_only) | deviation.required_here_only
    return required


def test_schema_of_one_type_matches_the_reference(cli: list[str], ref_models: Any) -> None:
    result = run(cli, "schema", "inference.TokenResponse")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    component = schema["$defs"][schema["$ref"].rpartition("/")[2]]
    reference = _spec_models(ref_models)["inference.TokenResponse"]
    assert component["properties"].keys() == reference["properties"].keys()
    assert set(component["required"]) == set(reference["required"])


def test_schema_of_all_types_matches_the_reference(ref_models: Any) -> None:
    result = run(_script(), "schema")
    assert result.returncode == 0, result.stderr
    definitions = json.loads(result.stdout)["$defs"]
    for name, reference in _spec_models(ref_models).items():
        ours = definitions[name.rpartition(".")[2]]
        assert ours["properties"].keys() == reference.get("properties", {}).keys(), name
        assert set(ours.get("required", [])) == _expected_required(name, reference), name
    assert definitions["WorkerResponse"]["discriminator"]["propertyName"] == "response_type"


def test_schema_openapi_is_a_components_document_whose_refs_resolve(ref_models: Any) -> None:
    result = run(_script(), "schema", "--openapi")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    assert {name.rpartition(".")[2] for name in _spec_models(ref_models)} <= schemas.keys()
    refs = [m for m in _walk_refs(schemas)]
    assert refs
    assert all(ref.startswith("#/components/schemas/") and ref.rpartition("/")[2] in schemas for ref in refs)


def _walk_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _walk_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _walk_refs(v)]
    return []


def test_types_lists_every_message_and_union(ref_models: Any) -> None:
    result = run(_script(), "types")
    assert result.returncode == 0
    names = result.stdout.splitlines()
    unions = {key.split(" ")[0] for key in ref_models["unions"]}
    assert set(names) == set(_spec_models(ref_models)) | unions
    assert len(names) == len(set(names))


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    """The reader went away (`oasst-shared schema | head -c 100`): exit 1, no traceback."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [*_script(), "schema"], stdout=writer, stderr=subprocess.PIPE, timeout=60, check=False
        )
    finally:
        os.close(writer)
    assert result.returncode == 1
    assert result.stderr == b""


# ------------------------------------------------------------- help, no source checkout needed


@pytest.mark.parametrize("command", [[], ["validate"], ["schema"], ["types"]])
def test_every_command_has_help_with_an_example(cli: list[str], command: list[str]) -> None:
    result = run(cli, *command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: oasst-shared {' '.join(command)}".rstrip())
    examples = result.stdout.split("examples:\n", 1)[1]
    assert f"  oasst-shared {' '.join(command)}".rstrip() in examples


# Runs the command line of a copy of the package outside the checkout, where the checkout's own
# packages (benchmarks, tests, tools, fuzz) cannot be imported: argv = [copy's parent, *command].
_WITHOUT_CHECKOUT = """
import sys
sys.path.insert(0, sys.argv[1])

class CheckoutOnly:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"benchmarks", "tests", "tools", "fuzz"}:
            raise ImportError(f"{name} belongs to the source checkout")

sys.meta_path.insert(0, CheckoutOnly())
import oasst_shared
assert oasst_shared.__file__.startswith(sys.argv[1]), oasst_shared.__file__
from oasst_shared.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_the_installed_commands_need_no_source_checkout(tmp_path: Path) -> None:
    """The console script works from the package alone; the benchmarks are `make bench`, not a command."""
    shutil.copytree(
        REPO_ROOT / "oasst_shared", tmp_path / "oasst_shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    installed = [sys.executable, "-c", _WITHOUT_CHECKOUT, str(tmp_path)]
    capture = tmp_path / "capture.ndjson"
    capture.write_bytes(token_frame(1) + b"\n")
    expected = {
        ("--help",): "make bench",
        ("types",): "inference.WorkerResponse\n",
        ("schema", "inference.TokenResponse"): '"title": "TokenResponse"',
        ("validate", "inference.WorkerResponse", str(capture)): "1 valid, 0 invalid",
    }
    for command, shown in expected.items():
        result = run(installed, *command, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert shown in result.stdout, (command, result.stdout)

    bench = run(installed, "bench", "--quick", cwd=tmp_path)
    assert bench.returncode == 2
    assert "invalid choice: 'bench'" in bench.stderr
    assert "Traceback" not in bench.stderr


def test_the_commands_import_neither_pydantic_nor_httpx() -> None:
    code = (
        "import contextlib, io, sys\n"
        "from oasst_shared.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['schema', '--openapi']); main(['types'])\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    sys.stdin = io.TextIOWrapper(io.BytesIO(b'{}'))\n"
        "    main(['validate', 'inference.WorkerResponse'])\n"
        "heavy = ('pydantic', 'httpx', 'psutil', 'pynvml', 'oasst_compat')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


# ------------------------------------------------------------------ the engine, in process


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    final_newline=st.booleans(),
    chunk_size=st.integers(min_value=1, max_value=64),
)
def test_line_batches_reassemble_lines_across_any_chunk_size(
    lines: list[bytes], final_newline: bool, chunk_size: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    batches = list(read_line_batches(io.BytesIO(data), chunk_size=chunk_size))
    got = [line for batch, _ in batches for line in batch]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert got == expected
    assert (batches[-1][1] if batches else 0) == len(data)


def test_a_line_longer_than_many_chunks_is_one_message() -> None:
    long_text = "x" * 10_000
    data = token_frame(0, text=long_text) + b"\n" + token_frame(1) + b"\n"
    errors: list[InvalidMessage] = []
    validator = MessageValidator(inference.WorkerResponse, errors.append)
    for lines, _ in read_line_batches(io.BytesIO(data), chunk_size=64):
        validator.feed(lines)
    validator.finish()
    assert errors == []
    assert validator.valid == {"TokenResponse": 2}


def test_a_multi_line_input_beyond_the_document_limit_is_read_as_ndjson() -> None:
    """A broken first line starts collecting a document; past the limit, lines are checked one by one."""
    lines = [
        b"{",
        *(b'  "key_%d": "value",' % i for i in range(60)),
        b'{"response_type": "pong", "metrics": 1}',
    ]
    errors: list[InvalidMessage] = []
    validator = MessageValidator(inference.WorkerResponse, errors.append, max_document_bytes=1000)
    for batch, _ in read_line_batches(io.BytesIO(b"\n".join(lines[:-1]) + b"\n"), chunk_size=128):
        validator.feed(batch)
    # Reported while streaming: not held back until the end, as a (pending) document would be.
    assert len(errors) > 30
    assert [(e.line, e.label, e.path) for e in errors[:2]] == [(1, "unknown", "$"), (2, "unknown", "$")]
    validator.feed([lines[-1]])
    validator.finish()
    assert (errors[-1].line, errors[-1].label, errors[-1].path) == (62, "PongResponse", "$.metrics")


def test_ndjson_after_a_broken_first_line_is_validated_as_it_arrives() -> None:
    """A later line that is a JSON object on its own ends the search for a document at once."""
    errors: list[InvalidMessage] = []
    validator = MessageValidator(inference.WorkerResponse, errors.append)
    validator.feed([token_frame(0)[:20], token_frame(1)])
    assert [(e.line, e.label, e.path) for e in errors] == [(1, "unknown", "$")]
    assert "Input data was truncated" in errors[0].message
    assert validator.valid == {"TokenResponse": 1}
    validator.feed([token_frame(2), b'{"response_type": "pong", "metrics": 1}'])
    assert [(e.line, e.label) for e in errors] == [(1, "unknown"), (4, "PongResponse")]
    validator.finish()
    assert validator.valid == {"TokenResponse": 2}
