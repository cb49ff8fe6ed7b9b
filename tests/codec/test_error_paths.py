"""The same bad input gets the same path on every decode path: the codecs, ``parse_raw`` /
``parse_obj``, the API client's response decoding and ``oasst-shared validate``.

The expected paths and positions are written out by hand from the documents below (they are
the README's and the migration guide's promises), not computed by the code under test.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from oasst_shared import codec
from oasst_shared.api_client import OasstApiClient, OasstApiResponseError
from oasst_shared.cli.validate import InvalidMessage, MessageValidator
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas._registry import union_tags

TASK_ID = "8f4d0a5e-5b8e-4a6b-9d8b-2f9a7c1e3d4b"
USER = {"id": "1", "display_name": "One", "auth_method": "local"}

WORK_REQUEST_NO_ROLE = {
    "request_type": "work",
    "thread": {
        "messages": [
            {
                "id": "m1",
                "chat_id": "c1",
                "created_at": "2023-03-01T12:00:00+00:00",
                "content": "Hi",
                "state": "complete",
                "score": 0,
            }
        ]
    },
    "parameters": {"model_config": {"model_id": "distilgpt2"}},
}

TEXT_LABELS_UNKNOWN_LABEL = {
    "type": "text_labels",
    "user": USER,
    "message_id": TASK_ID,
    "text": "t",
    "labels": {"spam": 0.5, "not_a_label": 1.0},
}


def _doc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# (type, codec, document, path, in_key, text the message must hold)
CASES: list[tuple[Any, Any, bytes, str, bool, str]] = [
    (
        protocol.AnyTask,
        codec.any_task,
        _doc({"id": TASK_ID}),
        "$.type",
        False,
        "missing required field `type`",
    ),
    (
        inference.WorkerResponse,
        codec.worker_response,
        b'{"text": "a", "token_id": 1}',
        "$.response_type",
        False,
        "missing required field `response_type`",
    ),
    (
        inference.WorkerRequest,
        codec.worker_request,
        _doc(WORK_REQUEST_NO_ROLE),
        "$.thread.messages[0].role",
        False,
        "missing required field `role`",
    ),
    (
        protocol.AnyInteraction,
        codec.any_interaction,
        _doc(TEXT_LABELS_UNKNOWN_LABEL),
        "$.labels",
        True,
        "Invalid enum value 'not_a_label' (in a key)",
    ),
    (
        inference.WorkerResponse,
        codec.worker_response,
        b'{"response_type": "token", "text": 3, "token_id": 1}',
        "$.text",
        False,
        "Expected `str`, got `int`",
    ),
]

# Malformed JSON: (document, byte, line, column) of the first bad byte, counted by hand.
SYNTAX: list[tuple[bytes, int, int, int]] = [
    (b'{"response_type": "token",\n "text": }', 36, 2, 10),
    (b'{"response_type": "token", "text": "a"', 38, 1, 39),  # truncated: the end of the input
    (b'{"response_type": "token", "text": "caf\xe9", "token_id": 1}', 39, 1, 40),  # invalid UTF-8
]


def _member_for(tp: Any, document: bytes) -> Any:
    """The union member the document's tag names."""
    tags = union_tags(tp)
    assert tags is not None, tp
    tag_field, members = tags
    tag = json.loads(document).get(tag_field)
    assert tag in members, f"no member of {tp} for {tag_field}={tag!r}"
    return members[tag]


def _validate(message_type: Any, document: bytes) -> InvalidMessage:
    found: list[InvalidMessage] = []
    validator = MessageValidator(message_type, found.append)
    validator.feed([document])
    validator.finish()
    assert len(found) == 1, found
    return found[0]


def _client_error(document: bytes) -> str:
    """The message of the API client's error for a task answer ``document``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=document, headers={"content-type": "application/json"})

    async def main() -> str:
        session = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with OasstApiClient("http://backend.test", "key", session=session) as client:
            with pytest.raises(OasstApiResponseError) as info:
                await client.fetch_random_task()
        await session.aclose()
        return str(info.value)

    return anyio.run(main)


@pytest.mark.parametrize("case", CASES)
def test_one_path_on_every_decode_path(case: tuple[Any, Any, bytes, str, bool, str]) -> None:
    tp, frame_codec, document, path, in_key, text = case
    with pytest.raises(codec.FrameDecodeError) as frame_error:
        frame_codec.decode(document)
    assert (frame_error.value.path, frame_error.value.in_key) == (path, in_key)
    assert f"{text} - at `{path}`" in str(frame_error.value)

    invalid = _validate(tp, document)
    assert invalid.path == path
    assert text in invalid.message


@pytest.mark.parametrize(
    ("member", "document", "path", "text"),
    [(_member_for(tp, document), document, path, text) for tp, _, document, path, _, text in CASES[2:]],
)
def test_parse_raw_and_parse_obj_name_the_same_path(
    member: Any, document: bytes, path: str, text: str
) -> None:
    """A member decoded on its own (a document without its tag is then fine: the class says
    what it is, as with the reference)."""
    with pytest.raises(msgspec.ValidationError, match=re.escape(f"{text} - at `{path}`")):
        member.parse_raw(document)
    with pytest.raises(msgspec.ValidationError, match=re.escape(f"{text} - at `{path}`")):
        member.parse_obj(json.loads(document))


def test_the_api_client_names_the_same_path() -> None:
    missing = _client_error(_doc({"id": TASK_ID}))
    assert "does not match protocol.AnyTask: Object missing required field `type` - at `$.type`" in missing
    bad_type = _doc({"type": "initial_prompt", "id": TASK_ID, "hint": 3})
    assert "Expected `str | null`, got `int` - at `$.hint`" in _client_error(bad_type)


@pytest.mark.parametrize(("document", "byte", "line", "column"), SYNTAX)
def test_malformed_json_names_line_column_and_byte(
    document: bytes, byte: int, line: int, column: int
) -> None:
    where = f"line {line}, column {column}" if line > 1 else f"column {column}"
    with pytest.raises(codec.FrameDecodeError) as info:
        codec.worker_response.decode(document)
    err = info.value
    assert (err.path, err.byte, err.line, err.column) == ("$", byte, line, column)
    assert str(err).endswith(f" at {where} (byte {byte})")
    with pytest.raises(msgspec.DecodeError) as parsed:
        inference.TokenResponse.parse_raw(document)
    assert str(parsed.value).endswith(f" at {where} (byte {byte})")
    if line == 1:  # the CLI reads NDJSON: one document per line
        invalid = _validate(inference.WorkerResponse, document)
        assert invalid.path == "$"
        assert invalid.message.endswith(f" at {where} (byte {byte})")


@pytest.mark.parametrize(("document", "byte", "line", "column"), SYNTAX[:2])
def test_the_api_client_names_where_json_is_malformed(
    document: bytes, byte: int, line: int, column: int
) -> None:
    """The same bytes as a task answer, the tag swapped for one of the same length. (Invalid
    UTF-8 is left out here: TaskDone ignores the field holding it, unread, as msgspec does.)"""
    where = f"line {line}, column {column}" if line > 1 else f"column {column}"
    task = document.replace(b'"response_type": "token"', b'"type":      "task_done"')
    assert len(task) == len(document)
    assert f"is not valid JSON ({_problem_text(task)} at {where} (byte {byte}))" in _client_error(task)


def _problem_text(document: bytes) -> str:
    return "Input data was truncated" if document.endswith(b'"a"') else "JSON is malformed: invalid character"


def test_decode_lines_names_the_line_of_the_stream() -> None:
    lines = (
        b'{"response_type": "token", "text": "a", "token_id": 1}\n\n{"response_type": "token", "text": 2}\n'
    )
    with pytest.raises(codec.FrameDecodeError) as info:
        codec.worker_response.decode_lines(lines)
    assert (info.value.line, info.value.path) == (3, "$.text")
    assert str(info.value).startswith("line 3: ")
