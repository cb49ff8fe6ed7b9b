"""Deterministic messages at realistic sizes, the same in every run."""

from __future__ import annotations

import random
from uuid import UUID

from oasst_shared.model_configs import MODEL_CONFIGS
from oasst_shared.schemas import inference, protocol
from tests.support import factories

_WORDS = (
    "the model answers questions about history science cooking travel and code with care "
    "while citing sources when it can and saying so when it cannot be sure of the facts"
).split()

_T0 = factories.T0


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


REQUEST_ID = "5b0e8f0e-8d7c-4bb6-9c39-6d1f8a3e2c41"


def token_response() -> inference.TokenResponse:
    """145 bytes on the wire (a UUID request id, a one-word token)."""
    return inference.TokenResponse(
        request_id=REQUEST_ID, text=" assistant", log_prob=-0.4523167073726654, token_id=18432
    )


def generated_text_response() -> inference.GeneratedTextResponse:
    """A 2,000-character answer with metrics."""
    rng = _rng(2)
    return inference.GeneratedTextResponse(
        request_id=REQUEST_ID,
        text=_text(rng, 2000),
        finish_reason="eos_token",
        metrics=factories.metrics_info(),
    )


def _work_parameters(rng: random.Random) -> inference.WorkParameters:
    return inference.WorkParameters(
        model_config=MODEL_CONFIGS["OA_SFT_Llama_30Bq_7"],
        sampling_parameters=inference.SamplingParameters(
            top_k=50, top_p=0.95, temperature=0.8, repetition_penalty=1.2, max_new_tokens=1024
        ),
        seed=rng.getrandbits(63),
        system_prompt="You are a helpful assistant.",
        plugins=[inference.PluginEntry(url="https://plugins.example/weather/ai-plugin.json", trusted=True)],
    )


def work_request(messages: int = 20) -> inference.WorkRequest:
    """A thread of ``messages`` messages (about 22 KB for 20), half with work parameters."""
    rng = _rng(3)
    chat_id = str(_uuid(rng))
    thread: list[inference.MessageRead] = []
    parent: str | None = None
    for i in range(messages):
        assistant = i % 2 == 1
        msg_id = str(_uuid(rng))
        thread.append(
            inference.MessageRead(
                id=msg_id,
                parent_id=parent,
                content=_text(rng, 700 if assistant else 300),
                chat_id=chat_id,
                created_at=_T0,
                role="assistant" if assistant else "prompter",
                state=inference.MessageState.complete,
                score=rng.randint(-2, 5),
                reports=[],
                work_parameters=_work_parameters(rng) if assistant else None,
                safe_content=None,
            )
        )
        parent = msg_id
    return inference.WorkRequest(
        id=str(_uuid(rng)),
        thread=inference.Thread(messages=thread),
        created_at=_T0,
        parameters=_work_parameters(rng),
        safety_parameters=inference.SafetyParameters(level=2),
    )


def _conversation_message(rng: random.Random, assistant: bool) -> protocol.ConversationMessage:
    return protocol.ConversationMessage(
        id=_uuid(rng),
        user_id=_uuid(rng),
        frontend_message_id=str(_uuid(rng)),
        text=_text(rng, 400 if assistant else 150),
        lang="en",
        is_assistant=assistant,
        emojis={"+1": rng.randint(0, 9), "red_flag": 0},
        user_emojis=["+1"],
        user_is_author=False,
        synthetic=False,
    )


def rank_assistant_replies_task() -> protocol.RankAssistantRepliesTask:
    """A 10-message conversation and 4 replies to rank."""
    rng = _rng(4)
    replies = [_conversation_message(rng, True) for _ in range(4)]
    return protocol.RankAssistantRepliesTask(
        id=_uuid(rng),
        conversation=protocol.Conversation(
            messages=[_conversation_message(rng, i % 2 == 1) for i in range(10)]
        ),
        replies=[r.text for r in replies],
        reply_messages=replies,
        message_tree_id=_uuid(rng),
        ranking_parent_id=_uuid(rng),
        reveal_synthetic=False,
    )


def text_labels() -> protocol.TextLabels:
    rng = _rng(5)
    return protocol.TextLabels(
        user=protocol.User(id="discord:123456789", display_name="labeler", auth_method="discord"),
        text=_text(rng, 300),
        labels={
            protocol.TextLabel.spam: 0.0,
            protocol.TextLabel.fails_task: 0.0,
            protocol.TextLabel.quality: 0.75,
            protocol.TextLabel.helpfulness: 1.0,
            protocol.TextLabel.creativity: 0.5,
            protocol.TextLabel.humor: 0.25,
        },
        message_id=_uuid(rng),
        task_id=_uuid(rng),
        is_report=False,
    )


def worker_info() -> inference.WorkerInfo:
    """A 30B model on 8 GPUs (``tests.support.factories.worker_info``)."""
    return factories.worker_info()
