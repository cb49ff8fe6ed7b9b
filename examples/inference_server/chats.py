"""The chat routes, with the reference's paths, bodies and answers (``routes/chats.py``,
``schemas/chat.py``): create a chat, add a prompter message, ask for an assistant message (queued
for a worker of its model), read them, and stream an assistant message's events."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from examples.inference_server.state import State, state_of
from examples.inference_server.store import FINISHED, StoreError
from oasst_shared.model_configs import MODEL_CONFIGS
from oasst_shared.relay import QueueFullError
from oasst_shared.schemas import inference
from oasst_shared.server import EventStreamResponse, message_event_chunks

log = logging.getLogger("inference_server")


class CreatePrompterMessageRequest(msgspec.Struct, kw_only=True):
    """``POST /chats/{chat_id}/prompter_message``'s body."""

    parent_id: str | None = None
    content: str


class CreateAssistantMessageRequest(msgspec.Struct, kw_only=True):
    """``POST /chats/{chat_id}/assistant_message``'s body. ``plugins`` and ``used_plugin`` are
    read and ignored: this server runs no plugins."""

    parent_id: str
    model_config_name: str
    sampling_parameters: inference.SamplingParameters = msgspec.field(
        default_factory=inference.SamplingParameters
    )
    plugins: list[inference.PluginEntry] = msgspec.field(default_factory=list)
    used_plugin: inference.PluginUsed | None = None


_encode = msgspec.json.Encoder().encode


def json_response(obj: Any, status_code: int = 200) -> Response:
    return Response(_encode(obj), status_code=status_code, media_type="application/json")


async def body_as(request: Request, type_: type[Any]) -> Any:
    """The request's JSON body as ``type_``; 422 with msgspec's message (it names the path) if not."""
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=type_)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise HTTPException(status_code=422, detail=f"the body is not JSON: {exc}") from exc


def check_auth(request: Request) -> None:
    """With ``--chat-auth``: ``Authorization: Bearer <one of the --api-key values>``, else 401."""
    settings = state_of(request).settings
    if not settings.chat_auth:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys
    ):
        raise HTTPException(status_code=401, detail="Invalid token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/chats", tags=["chats"], dependencies=[Depends(check_auth)])


def _state(request: Request) -> State:
    return state_of(request)


def _http(exc: StoreError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


@router.post("")
async def create_chat(request: Request) -> Response:
    """Create a chat (body ``{}``): its ``ChatListRead``."""
    await body_as(request, dict)
    chat = await _state(request).store.create_chat()
    return json_response(chat)


@router.get("/{chat_id}")
async def get_chat(chat_id: str, request: Request) -> Response:
    """The chat with its messages (``ChatRead``)."""
    try:
        return json_response(await _state(request).store.get_chat(chat_id))
    except StoreError as exc:
        raise _http(exc) from None


@router.post("/{chat_id}/prompter_message")
async def create_prompter_message(chat_id: str, request: Request) -> Response:
    """Add the user's message (``content``, ``parent_id``: the assistant message it answers)."""
    body: CreatePrompterMessageRequest = await body_as(request, CreatePrompterMessageRequest)
    try:
        stored = await _state(request).store.add_prompter_message(chat_id, body.parent_id, body.content)
    except StoreError as exc:
        raise _http(exc) from None
    return json_response(stored.message)


@router.post("/{chat_id}/assistant_message")
async def create_assistant_message(chat_id: str, request: Request) -> Response:
    """Ask for an answer to prompter message ``parent_id`` from model config ``model_config_name``:
    a pending assistant message, queued on ``work:{compat_hash}`` for a worker of that model."""
    body: CreateAssistantMessageRequest = await body_as(request, CreateAssistantMessageRequest)
    model_config = MODEL_CONFIGS.get(body.model_config_name)
    if model_config is None:
        raise HTTPException(status_code=422, detail=f"Invalid model config name: {body.model_config_name}")
    state = _state(request)
    work_parameters = inference.WorkParameters(
        model_config=model_config, sampling_parameters=body.sampling_parameters
    )
    try:
        stored = await state.store.add_assistant_message(
            chat_id, body.parent_id, work_parameters, model_config.compat_hash
        )
    except StoreError as exc:
        raise _http(exc) from None
    try:
        await state.relay.enqueue_work(model_config.compat_hash, stored.message.id)
    except QueueFullError:
        await state.store.delete_message(stored)
        raise HTTPException(
            status_code=503, detail="The server is currently busy. Please try again later."
        ) from None
    return json_response(stored.message)


@router.get("/{chat_id}/messages/{message_id}")
async def get_message(chat_id: str, message_id: str, request: Request) -> Response:
    """One message (``MessageRead``)."""
    try:
        stored = await _state(request).store.get_message(chat_id, message_id)
    except StoreError as exc:
        raise _http(exc) from None
    return json_response(stored.message)


@router.get("/{chat_id}/messages/{message_id}/events")
async def message_events(chat_id: str, message_id: str, request: Request) -> Response:
    """The assistant message's Server-Sent Events: ``pending`` (queue position) while it waits,
    then ``token`` events, then ``message`` (the finished message) or ``error``. 204 if it has
    already finished, 400 for a prompter message."""
    state = _state(request)
    try:
        stored = await state.store.get_message(chat_id, message_id)
    except StoreError as exc:
        raise _http(exc) from None
    if stored.message.role != "assistant":
        raise HTTPException(status_code=400, detail="Only assistant messages can be streamed.")
    if stored.message.state in FINISHED:
        return Response(status_code=204)
    settings = state.settings
    chunks = message_event_chunks(
        state.relay,
        message_id,
        stored.worker_compat_hash,
        pending_interval=settings.pending_event_interval,
        timeout=settings.stream_timeout,
    )
    return EventStreamResponse(
        chunks,
        ping_interval=settings.sse_ping_interval,
        send_timeout=settings.sse_send_timeout,
        metrics=state.metrics,
    )
