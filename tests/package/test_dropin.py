"""Drop-in: code written against the reference, in the shapes the Open-Assistant stack calls it.

The patterns (tests/../shared/CONSUMERS.md): messages built with their tag as a keyword, frames
read with ``parse_raw_as`` / ``parse_obj_as``, the API client built with keywords and a
caller's session, its task methods against the backend mock, errors from error bodies, and a
consumer's own pydantic model holding the views.
"""

from __future__ import annotations

import copy
import inspect
import pickle
import typing
from typing import Any
from uuid import uuid4

import httpx
import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oasst_compat
from oasst_compat.schemas import inference as views_inference
from oasst_compat.schemas import protocol as views_protocol
from oasst_shared import codec
from oasst_shared.api_client import OasstApiClient
from oasst_shared.exceptions import OasstError, OasstErrorCode
from oasst_shared.schemas import _registry as registry
from oasst_shared.schemas import inference, parse_obj_as, parse_raw_as, protocol
from oasst_shared.schemas.base import OasstStruct
from tests.support.backend_mock import MockServer
from tests.support.strategies import instances

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UNIONS = dict(registry.unions())
MEMBERS: list[type[OasstStruct]] = [m for union in UNIONS.values() for m in typing.get_args(union)]


def _tag(cls: type[OasstStruct]) -> tuple[str, str]:
    config = cls.__struct_config__
    assert isinstance(config.tag_field, str) and isinstance(config.tag, str)
    return config.tag_field, config.tag


def _fields(obj: OasstStruct) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__struct_fields__}


# ------------------------------------------------------------------------------ tag keyword


def test_every_union_member_is_walked() -> None:
    assert len(MEMBERS) == 15 + 4 + 6 + 9
    assert {_tag(m)[0] for m in MEMBERS} == {"type", "request_type", "response_type"}


@pytest.mark.parametrize("cls", MEMBERS, ids=lambda m: m.__name__)
def test_every_tagged_message_takes_its_tag_as_a_keyword(cls: type[OasstStruct]) -> None:
    field, tag = _tag(cls)

    @SETTINGS
    @given(instances(cls))
    def check(obj: OasstStruct) -> None:
        fields = _fields(obj)
        built = cls(**{field: tag}, **fields)
        assert type(built) is cls and built == obj
        assert getattr(built, field) == tag
        assert codec.JsonCodec(cls).encode(built) == codec.JsonCodec(cls).encode(obj)
        assert cls.new(**fields) == obj  # the fast path, same object

    check()


@pytest.mark.parametrize("cls", MEMBERS, ids=lambda m: m.__name__)
def test_a_wrong_tag_keyword_names_class_field_value_and_tag(cls: type[OasstStruct]) -> None:
    field, tag = _tag(cls)

    @SETTINGS
    @given(instances(cls), st.sampled_from(["", "Token", tag + " ", "task_done", 0, None]))
    def check(obj: OasstStruct, wrong: Any) -> None:
        if wrong == tag:
            return
        with pytest.raises(ValueError) as info:
            cls(**{field: wrong}, **_fields(obj))
        text = str(info.value)
        assert text.startswith(f"{cls.__name__}: {field}={wrong!r} given, expected {tag!r}"), text

    check()


def test_reference_call_shapes_build_as_they_did() -> None:
    """The two shapes the reference's own code uses (its API client tests, the worker)."""
    user = protocol.User(id="1", display_name="Jane", auth_method="discord")
    reply = protocol.TextReplyToMessage(
        type="text_reply_to_message", user=user, message_id="m1", user_message_id="m2", text="Hi!"
    )
    assert reply.type == "text_reply_to_message" and reply.text == "Hi!"
    params = inference.WorkParameters(model_config=_model_config())
    thread = inference.Thread(messages=[])
    work = inference.WorkRequest(request_type="work", parameters=params, thread=thread)
    assert work.request_type == "work" and work.parameters is params
    assert protocol.TaskDone(type="task_done").type == "task_done"
    assert inference.PingRequest(request_type="ping", id="p1") == inference.PingRequest(id="p1")


def test_tag_keyword_keeps_positional_pickle_copy_replace_and_decode() -> None:
    token = inference.TokenResponse(response_type="token", request_id="r", text="a", token_id=1)
    assert pickle.loads(pickle.dumps(token)) == token
    assert copy.copy(token) == token and copy.deepcopy(token) == token
    assert msgspec.structs.replace(token, text="b").text == "b"
    assert token.copy(update={"text": "c"}).text == "c"
    with pytest.raises(TypeError, match="Extra positional arguments"):  # as msgspec says it
        inference.TokenResponse("r", "a")  # type: ignore[misc]
    with pytest.raises(TypeError, match="Unexpected keyword argument 'nope'"):
        inference.TokenResponse(text="a", token_id=1, nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Missing required argument 'token_id'"):
        inference.TokenResponse(response_type="token", text="a")  # type: ignore[call-arg]
    # the signature is still the fields'
    assert list(inspect.signature(inference.TokenResponse).parameters) == list(token.__struct_fields__)


def test_decoding_never_calls_the_tag_keyword_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoders, convert, replace and copy build structs in msgspec's C code: only a call of
    the class goes through the metaclass ``__call__``."""
    meta = type(inference.TokenResponse)
    assert meta is not type(inference.WorkParameters)  # tagged structs alone have the __call__

    def refuse(cls: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{cls.__name__}(...) was called")

    frame = b'{"response_type": "token", "request_id": "r", "text": "a", "token_id": 1}'
    token = inference.TokenResponse.new(request_id="r", text="a", token_id=1)
    monkeypatch.setattr(meta, "__call__", refuse)
    with pytest.raises(AssertionError, match="was called"):
        inference.TokenResponse(request_id="r", text="a", token_id=1)
    assert codec.worker_response.decode(frame) == token
    assert inference.TokenResponse.parse_raw(frame) == token
    assert parse_obj_as(inference.WorkerResponse, msgspec.json.decode(frame)) == token
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(token), type=inference.TokenResponse) == token
    assert msgspec.structs.replace(token, text="b") == inference.TokenResponse.new(
        request_id="r", text="b", token_id=1
    )
    assert copy.copy(token) == token


def test_a_struct_may_not_have_a_field_named_new() -> None:
    with pytest.raises(TypeError, match="a field may not be named `new`"):

        class Bad(OasstStruct, kw_only=True):
            new: int


@pytest.mark.parametrize("cls", MEMBERS, ids=lambda m: m.__name__)
def test_views_take_the_tag_keyword_too(cls: type[OasstStruct]) -> None:
    field, tag = _tag(cls)
    view_cls = oasst_compat.view_class(cls)

    @SETTINGS
    @given(instances(cls))
    def check(obj: OasstStruct) -> None:
        view = oasst_compat.to_pydantic(obj)
        data = view.model_dump(by_alias=True)
        assert data[field] == tag
        built = view_cls(**data)
        assert built == view and getattr(built, field) == tag
        with pytest.raises(pydantic.ValidationError):
            view_cls(**{**data, field: tag + "-not"})

    check()


# ------------------------------------------------------------------- parse_raw_as / parse_obj_as


def _model_config() -> inference.ModelConfig:
    return inference.ModelConfig(model_id="distilgpt2", max_input_length=512, max_total_length=1024)


def _token_frames() -> list[bytes]:
    return [
        codec.worker_response.encode(inference.TokenResponse(request_id="r1", text=" t", token_id=i))
        for i in range(3)
    ]


def test_parse_raw_as_reads_every_frame_as_the_reference_did() -> None:
    """The inference server and worker: ``parse_raw_as(inference.WorkerResponse, raw)``."""
    for frame in _token_frames():
        got = parse_raw_as(inference.WorkerResponse, frame)
        assert isinstance(got, inference.TokenResponse) and got == codec.worker_response.decode(frame)
        assert parse_raw_as(inference.WorkerResponse, frame.decode()) == got  # str, as websockets give
    request = inference.WorkRequest(
        thread=inference.Thread(messages=[]),
        parameters=inference.WorkParameters(model_config=_model_config()),
    )
    text = request.json()
    assert parse_raw_as(inference.WorkerRequest, text) == request
    assert parse_raw_as(inference.WorkRequest, text) == request  # a struct class
    assert parse_raw_as(list[inference.WorkerResponse], b"[" + b",".join(_token_frames()) + b"]") == [
        codec.worker_response.decode(f) for f in _token_frames()
    ]
    assert parse_raw_as(protocol.AnyTask, b'{"type": "task_done"}').type == "task_done"


def test_parse_raw_as_goes_through_the_prebuilt_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No decoder built per call: the unions' prebuilt codec, else one codec per type, kept."""
    from oasst_shared import schemas

    made: list[Any] = []
    real = codec.JsonCodec

    def counting(tp: Any, **kwargs: Any) -> Any:
        made.append(tp)
        return real(tp, **kwargs)

    monkeypatch.setattr(schemas, "_codecs", {})
    monkeypatch.setattr(schemas, "_codecs_by_id", {})
    monkeypatch.setattr(codec, "JsonCodec", counting)
    frame = _token_frames()[0]
    for _ in range(3):
        parse_raw_as(inference.WorkerResponse, frame)
        parse_raw_as(inference.TokenResponse, frame)
        parse_raw_as(list[inference.TokenResponse], b"[" + frame + b"]")  # a new, equal object each time
    assert made == [inference.TokenResponse, list[inference.TokenResponse]]  # once each
    assert schemas._codecs[inference.WorkerResponse] is codec.worker_response
    # the per-id table stays bounded however many equal type objects come by
    for _ in range(2 * schemas._BY_ID_MAX):
        parse_raw_as(list[inference.TokenResponse], b"[]")
    assert len(schemas._codecs_by_id) <= schemas._BY_ID_MAX
    assert made == [inference.TokenResponse, list[inference.TokenResponse]]


BAD_FRAMES = [
    b'{"text": "a", "token_id": 1}',  # no tag
    b'{"response_type": "token", "text": 3, "token_id": 1}',  # wrong type
    b'{"response_type": "token", "text": "a"}',  # missing field
    b'{"response_type": "nope"}',  # unknown tag
    b'{"response_type": "token", "text": "a",',  # truncated
    b"[]",
]


@pytest.mark.parametrize("frame", BAD_FRAMES)
def test_parse_raw_as_raises_what_the_codec_raises(frame: bytes) -> None:
    with pytest.raises(codec.FrameDecodeError) as ours:
        parse_raw_as(inference.WorkerResponse, frame)
    with pytest.raises(codec.FrameDecodeError) as theirs:
        codec.worker_response.decode(frame)
    assert str(ours.value) == str(theirs.value)
    assert (ours.value.path, ours.value.tag, ours.value.byte) == (
        theirs.value.path,
        theirs.value.tag,
        theirs.value.byte,
    )


def test_parse_obj_as_builds_unions_and_structs() -> None:
    user = {"id": "1", "display_name": "Jane", "auth_method": "discord"}
    obj = {
        "type": "text_reply_to_message",
        "user": user,
        "message_id": "m1",
        "user_message_id": "m2",
        "text": "Hi",
    }
    got = parse_obj_as(protocol.AnyInteraction, obj)
    assert isinstance(got, protocol.TextReplyToMessage) and got.user.display_name == "Jane"
    assert parse_obj_as(protocol.TextReplyToMessage, obj) == got
    assert parse_obj_as(protocol.TextReplyToMessage, got) is got  # already one
    assert parse_obj_as(protocol.AnyInteraction, got) is got
    # a tag given as an enum member, not a str: the union's own conversion decides (and refuses)
    with pytest.raises(msgspec.ValidationError, match=r"got `TaskRequestType` - at `\$\.type`"):
        parse_obj_as(protocol.AnyTask, {"type": protocol.TaskRequestType.summarize_story})
    assert parse_obj_as(list[protocol.User], [user, user]) == [protocol.User(**user)] * 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({}, "$.type"),
        ({"type": "text_reply_to_message", "message_id": 1}, "$.message_id"),
        (
            {"type": "text_labels", "text": "t", "message_id": str(uuid4()), "labels": {"nope": 1.0}},
            "$.labels",
        ),
    ],
)
def test_parse_obj_as_errors_name_the_path_as_parse_obj_does(obj: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        parse_obj_as(protocol.AnyInteraction, obj)
    assert str(info.value).endswith(f"- at `{path}`"), str(info.value)
    if "type" in obj:
        member = {m.__struct_config__.tag: m for m in typing.get_args(protocol.AnyInteraction)}[obj["type"]]
        with pytest.raises(msgspec.ValidationError) as direct:
            member.parse_obj(obj)
        assert str(direct.value) == str(info.value)


UNION_INPUTS = [
    {},
    {"response_type": "nope"},
    {"response_type": 3},
    {"response_type": "token", "text": 3, "token_id": 1},
    {"response_type": "token", "text": "a"},
    {"response_type": "token", "text": "a", "token_id": 1, "log_prob": "x"},
    {"response_type": "token", "request_id": "r", "text": "a", "token_id": 1},
    {"response_type": "generated_text", "text": "a", "finish_reason": "length"},
    {"response_type": "generated_text", "text": "a", "finish_reason": "nope"},
    [],
    "token",
    None,
]


@pytest.mark.parametrize("obj", UNION_INPUTS)
def test_parse_obj_as_on_a_union_is_msgspec_convert_into_the_union(obj: Any) -> None:
    """parse_obj_as picks the member by its tag (msgspec rebuilds its plan for a union on every
    convert); result and error are still exactly what converting into the union gives."""
    try:
        want: Any = msgspec.convert(obj, inference.WorkerResponse)
    except msgspec.ValidationError as exc:
        want = exc
    if isinstance(want, Exception):
        with pytest.raises(msgspec.ValidationError) as info:
            parse_obj_as(inference.WorkerResponse, obj)
        assert str(info.value).startswith(str(want).split(" - at ")[0])
        assert str(info.value) == str(schemas_translated(want))
    else:
        assert parse_obj_as(inference.WorkerResponse, obj) == want


def schemas_translated(exc: Exception) -> str:
    """What ``parse_obj`` says for msgspec's error: the shared translation (path of a missing
    field named as the field)."""
    from oasst_shared._decode_errors import describe

    return str(describe(exc, None, "WorkerResponse"))


def test_view_parse_raw_as_and_parse_obj_as() -> None:
    frame = _token_frames()[0]
    got = oasst_compat.parse_raw_as(views_inference.WorkerResponse, frame)
    assert isinstance(got, views_inference.TokenResponse) and got.token_id == 0
    assert oasst_compat.parse_raw_as(views_inference.WorkerResponse, frame.decode()) == got
    again = oasst_compat.parse_obj_as(views_inference.WorkerResponse, msgspec.json.decode(frame))
    assert again == got
    tasks = oasst_compat.parse_obj_as(list[views_protocol.AnyTask], [{"type": "task_done"}])  # type: ignore[valid-type]
    assert isinstance(tasks[0], views_protocol.TaskDone)
    with pytest.raises(pydantic.ValidationError) as info:
        oasst_compat.parse_raw_as(views_inference.WorkerResponse, b'{"response_type": "token", "text": 3}')
    assert {tuple(e["loc"]) for e in info.value.errors()} >= {("token", "text"), ("token", "token_id")}
    # one TypeAdapter per type, reused
    assert oasst_compat._adapter(views_inference.WorkerResponse) is oasst_compat._adapter(
        views_inference.WorkerResponse
    )


# -------------------------------------------------------- a consumer's own model with the views


class GenerateStreamParameters(pydantic.BaseModel):
    """Shaped like the inference worker's: its own model, typed with the views."""

    max_new_tokens: int = 1024
    do_sample: bool = True
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: list[str] = []
    plugins: list[views_inference.PluginEntry] = pydantic.Field(default_factory=list)

    @staticmethod
    def from_work_parameters(params: views_inference.WorkParameters) -> GenerateStreamParameters:
        return GenerateStreamParameters(
            max_new_tokens=params.sampling_parameters.max_new_tokens,
            do_sample=params.do_sample,
            top_k=params.sampling_parameters.top_k,
            top_p=params.sampling_parameters.top_p,
            temperature=params.sampling_parameters.temperature,
            seed=params.seed,
            plugins=params.plugins,
        )


def test_a_consumer_model_typed_with_views_builds_from_a_decoded_work_request() -> None:
    plugin = inference.PluginEntry(url="https://plugins.example/ai-plugin.json", trusted=True)
    request = inference.WorkRequest(
        request_type="work",
        thread=inference.Thread(messages=[]),
        parameters=inference.WorkParameters(
            model_config=_model_config(),
            sampling_parameters=inference.SamplingParameters(top_k=50, temperature=0.7, max_new_tokens=64),
            do_sample=False,
            seed=42,
            plugins=[plugin],
        ),
    )
    view = oasst_compat.parse_raw_as(views_inference.WorkerRequest, request.json())
    assert isinstance(view, views_inference.WorkRequest)
    params = GenerateStreamParameters.from_work_parameters(view.parameters)
    assert (params.max_new_tokens, params.do_sample, params.top_k, params.temperature, params.seed) == (
        64,
        False,
        50,
        0.7,
        42,
    )
    assert params.plugins == [oasst_compat.to_pydantic(plugin)]
    assert params.plugins[0].url == plugin.url and params.plugins[0].trusted is True
    assert view.parameters.model_config.model_id == "distilgpt2"  # the wire field, as before
    dumped = GenerateStreamParameters.model_validate_json(params.model_dump_json())
    assert dumped == params


# ------------------------------------------------------------------------------ API client

API_KEY = "dropin-test-key"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_api_client_built_and_called_as_the_reference_code_does(prism: MockServer) -> None:
    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    session = httpx.AsyncClient(event_hooks={"request": [record]})
    client = OasstApiClient(backend_url=prism.url, api_key=API_KEY, session=session)
    try:
        for task_type in protocol.TaskRequestType:
            task = await client.fetch_task(task_type, user=USER, collective=False, lang="en")
            assert isinstance(task, protocol.Task), task_type
            assert msgspec.json.decode(requests[-1].content)["type"] == task_type.value
        task = await client.fetch_random_task(user=USER)
        assert isinstance(task, protocol.Task)
        await client.ack_task(task_id=uuid4(), message_id="frontend-msg-1")
        ack = msgspec.json.decode(requests[-1].content)
        assert requests[-1].url.path.endswith("/ack") and ack == {"message_id": "frontend-msg-1"}
        await client.nack_task(task_id=str(uuid4()), reason="cannot show it")
        assert msgspec.json.decode(requests[-1].content) == {"reason": "cannot show it"}
        reply = protocol.TextReplyToMessage(
            type="text_reply_to_message", user=USER, message_id="m1", user_message_id="m2", text="Hi!"
        )
        next_task = await client.post_interaction(reply)
        assert isinstance(next_task, protocol.Task)
        sent = msgspec.json.decode(requests[-1].content)
        assert sent["type"] == "text_reply_to_message" and sent["text"] == "Hi!"
        assert all(r.headers["X-API-Key"] == API_KEY for r in requests)
    finally:
        await client.close()
    assert not session.is_closed  # the caller's session is the caller's to close
    await session.aclose()


def _answering(
    status: int, body: bytes, content_type: str, seen: list[httpx.Request] | None = None
) -> httpx.AsyncClient:
    """A session whose transport answers every request with this status and body."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.anyio
async def test_post_raises_oasst_error_from_the_backends_error_body() -> None:
    body = b'{"message": "Task not found", "error_code": 1001}'
    async with _answering(400, body, "application/json") as session:
        client = OasstApiClient(backend_url="http://backend.test", api_key=API_KEY, session=session)
        with pytest.raises(OasstError) as info:
            await client.post("/api/v1/tasks/interaction", data={})
    err = info.value
    assert err.message == "Task not found"
    assert err.error_code == OasstErrorCode.TASK_ACK_FAILED and err.http_status_code == 400


@pytest.mark.anyio
async def test_post_raises_oasst_error_from_a_text_500() -> None:
    seen: list[httpx.Request] = []
    async with _answering(500, b"Internal Server Error", "text/plain", seen) as session:
        client = OasstApiClient(backend_url="http://backend.test", api_key=API_KEY, session=session)
        with pytest.raises(OasstError) as info:
            await client.post("/api/v1/tasks/", data={})
    err = info.value
    assert err.error_code == OasstErrorCode.GENERIC_ERROR and err.http_status_code == 500
    assert "Internal Server Error" in str(err)
    assert len(seen) == 1  # a POST that reached the server is not sent again
