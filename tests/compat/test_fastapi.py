"""The views as FastAPI route types, served by a real uvicorn on 127.0.0.1 and called with httpx.

The app declares its routes the way the backend and the inference server do: an
``AnyInteraction`` body answered with an ``AnyTask``, ``Message`` / ``MessagePage`` responses, a
``WorkerConfig`` body (the ``model_config`` wire key) and a ``WorkerResponse`` union body. Its
OpenAPI must carry the views' schemas, with the property names and required sets of the
reference backend's OpenAPI for every schema both documents have.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from oasst_compat.model_configs import ModelConfig
from oasst_compat.schemas import inference, protocol
from oasst_shared.schemas import protocol as core_protocol

USER = {"id": "u1", "display_name": "Ada", "auth_method": "discord"}
MESSAGE_ID = UUID("2f6f2f0e-6a8a-4a3a-9a55-1d1f6f1f6f1f")


def _message(text: str = "Hello") -> protocol.Message:
    return protocol.Message(
        id=MESSAGE_ID,
        text=text,
        is_assistant=True,
        created_date=datetime(2023, 4, 1, 8, 30, tzinfo=timezone.utc),
        emojis={"+1": 2},
        user=protocol.FrontEndUser(
            **USER,  # type: ignore[arg-type]
            user_id=uuid4(),
            enabled=True,
            deleted=False,
            notes="",
            show_on_leaderboard=True,
        ),
    )


def build_app() -> FastAPI:
    app = FastAPI(title="compat test backend")

    @app.post("/api/v1/tasks/interaction", response_model=protocol.AnyTask)
    def tasks_interaction(interaction: protocol.AnyInteraction) -> Any:
        if isinstance(interaction, protocol.TextReplyToMessage):
            return protocol.RateSummaryTask(full_text=interaction.text, summary=interaction.text[:3])
        if isinstance(interaction, protocol.MessageRanking):
            return protocol.LabelAssistantReplyTask(
                message_id=uuid4(),
                valid_labels=[label.value for label in protocol.TextLabel][:2],
                conversation=protocol.Conversation(),
                mode=protocol.LabelTaskMode.simple,
            )
        return protocol.TaskDone()

    @app.get("/api/v1/messages/{message_id}", response_model=protocol.Message)
    def get_message(message_id: UUID) -> protocol.Message:
        if message_id != MESSAGE_ID:
            raise HTTPException(status_code=404, detail="no such message")
        return _message()

    @app.get("/api/v1/messages/", response_model=protocol.MessagePage)
    def query_messages() -> protocol.MessagePage:
        return protocol.MessagePage(
            sort_key="created_date", order="desc", items=[_message("a"), _message("b")]
        )

    @app.post("/worker/config", response_model=inference.WorkerConfig)
    def echo_worker_config(config: inference.WorkerConfig) -> inference.WorkerConfig:
        assert isinstance(config.model_config, ModelConfig)
        return config.model_copy(update={"max_parallel_requests": config.max_parallel_requests + 1})

    @app.post("/worker/response")
    def worker_response(response: inference.WorkerResponse) -> dict[str, str | None]:
        return {"response_type": response.response_type, "class": type(response).__name__}

    return app


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    """The app on uvicorn in a thread, on a free 127.0.0.1 port; stopped after the module."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -------------------------------------------------------------------------------- routes


def test_interaction_body_dispatches_by_tag_and_returns_a_task(client: httpx.Client) -> None:
    reply = {
        "type": "text_reply_to_message",
        "user": USER,
        "message_id": "m",
        "user_message_id": "u",
        "text": " hi ",
    }
    answer = client.post("/api/v1/tasks/interaction", json=reply)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["type"], body["full_text"], body["scale"]) == ("rate_summary", "hi", {"min": 1, "max": 5})
    UUID(body["id"])

    ranking = {"type": "message_ranking", "user": USER, "message_id": "m", "ranking": [1, 0]}
    label_task = client.post("/api/v1/tasks/interaction", json=ranking).json()
    assert label_task["type"] == "label_assistant_reply" and label_task["mode"] == "simple"
    decoded = core_protocol.LabelAssistantReplyTask.parse_raw(
        client.post("/api/v1/tasks/interaction", json=ranking).content
    )
    assert decoded.valid_labels == ["spam", "fails_task"]

    rating = {"type": "message_rating", "user": USER, "message_id": "m", "rating": 5}
    assert client.post("/api/v1/tasks/interaction", json=rating).json()["type"] == "task_done"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "message_rating", "user": USER, "message_id": "m", "rating": 0}, "rating"),
        ({"type": "message_ranking", "user": USER, "message_id": "m", "ranking": []}, "ranking"),
        (
            {
                "type": "text_reply_to_message",
                "user": USER,
                "message_id": "m",
                "user_message_id": "u",
                "text": " ",
            },
            "",
        ),
        ({"type": "teleport", "user": USER}, ""),
        ({"user": USER, "message_id": "m", "rating": 1}, ""),
    ],
)
def test_invalid_interactions_are_422(client: httpx.Client, body: dict[str, Any], where: str) -> None:
    answer = client.post("/api/v1/tasks/interaction", json=body)
    assert answer.status_code == 422, answer.text
    assert where in str(answer.json()["detail"])


def test_message_and_message_page_responses(client: httpx.Client) -> None:
    message = client.get(f"/api/v1/messages/{MESSAGE_ID}")
    assert message.status_code == 200
    struct = core_protocol.Message.parse_raw(message.content)
    assert struct.id == MESSAGE_ID and struct.emojis == {"+1": 2} and struct.user is not None
    assert struct.created_date == datetime(2023, 4, 1, 8, 30, tzinfo=timezone.utc)
    assert client.get(f"/api/v1/messages/{uuid4()}").status_code == 404

    page = core_protocol.MessagePage.parse_raw(client.get("/api/v1/messages/").content)
    assert [item.text for item in page.items] == ["a", "b"] and page.order == "desc"


def test_worker_config_uses_the_model_config_wire_key(client: httpx.Client) -> None:
    answer = client.post("/worker/config", json={"model_config": {"model_id": "x", "quantized": True}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "model_config": {
            "model_id": "x",
            "max_input_length": 512,
            "max_total_length": 1024,
            "quantized": True,
        },
        "max_parallel_requests": 2,
    }
    assert client.post("/worker/config", json={"max_parallel_requests": 1}).status_code == 422


def test_worker_response_union_body(client: httpx.Client) -> None:
    token = inference.TokenResponse(request_id="r", text="a", token_id=7)
    answer = client.post(
        "/worker/response", content=token.json(), headers={"content-type": "application/json"}
    )
    assert answer.json() == {"response_type": "token", "class": "TokenResponse"}
    general = {"response_type": "general_error", "error": "boom"}
    assert client.post("/worker/response", json=general).json()["class"] == "GeneralErrorResponse"


# ------------------------------------------------------------------------------- OpenAPI


def test_openapi_carries_the_views(client: httpx.Client) -> None:
    openapi = client.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    expected = {
        "TextReplyToMessage",
        "MessageRating",
        "MessageRanking",
        "TextLabels",
        "TaskDone",
        "RateSummaryTask",
        "LabelAssistantReplyTask",
        "Message",
        "MessagePage",
        "FrontEndUser",
        "WorkerConfig",
        "ModelConfig",
        "TokenResponse",
        "GeneralErrorResponse",
    }
    assert expected <= set(schemas)
    assert not [name for name in schemas if name.endswith(("-Input", "-Output"))]
    body = openapi["paths"]["/api/v1/tasks/interaction"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["discriminator"]["propertyName"] == "type"
    assert schemas["WorkerConfig"]["required"] == ["model_config"]


# Properties the reference backend's OpenAPI lacks while the reference models have them: the
# OpenAPI was dumped from a backend built on an older oasst_shared.
OPENAPI_OLDER_THAN_MODELS = {("Message", "edited")}


def test_openapi_matches_the_reference_backend(
    client: httpx.Client, backend_openapi: Any, ref_models: Any
) -> None:
    ours = client.get("/openapi.json").json()["components"]["schemas"]
    reference = backend_openapi["components"]["schemas"]
    shared = sorted(set(ours) & set(reference) - {"HTTPValidationError", "ValidationError"})
    assert len(shared) >= 10, shared
    newer: set[tuple[str, str]] = set()
    for name in shared:
        if "enum" in reference[name]:
            assert sorted(ours[name]["enum"]) == sorted(reference[name]["enum"]), name
            continue
        extra = set(ours[name]["properties"]) - set(reference[name]["properties"])
        assert set(reference[name]["properties"]) <= set(ours[name]["properties"]), name
        for prop in extra:
            assert prop in ref_models["modules"]["protocol"]["models"][name]["json_schema"]["properties"]
            newer.add((name, prop))
        assert set(ours[name].get("required", [])) == set(reference[name].get("required", [])), name
    assert newer == OPENAPI_OLDER_THAN_MODELS
