"""The chats, in Redis: the reference keeps them in Postgres; here every server process shares them.

Keys (this example's own; the relay's keys are the reference's, see the server guide):

| key | type | holds |
|---|---|---|
| ``oasst:chat:{chat_id}`` | string | the chat (``ChatListRead`` JSON) |
| ``oasst:chat:{chat_id}:messages`` | list | its message ids, in the order they were added |
| ``oasst:message:{message_id}`` | string | one message (``StoredMessage`` JSON: its ``MessageRead``, |
| | | and the server's own fields) |
| ``worker_session:{id}`` | string | a connected worker's session (the reference's key and fields) |
| ``oasst:compat_hashes`` | set | compat hashes workers connected with (``/metrics`` shows their queues) |

Nothing expires: like the reference's database, a chat lives as long as the Redis keeps it (an
embedded ``redis-server`` keeps nothing across a restart).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from oasst_shared.schemas import inference
from oasst_shared.utils import utcnow

CHAT = "oasst:chat:{}"
CHAT_MESSAGES = "oasst:chat:{}:messages"
MESSAGE = "oasst:message:{}"
WORKER_SESSION = "worker_session:{}"
COMPAT_HASHES = "oasst:compat_hashes"

FINISHED = frozenset(
    {inference.MessageState.manual, inference.MessageState.complete, inference.MessageState.aborted_by_worker}
)
"""States after which a message has nothing to stream (the reference's ``has_finished``)."""


class StoreError(Exception):
    """A request the store refuses: ``status`` is the HTTP status to answer, ``detail`` why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ChatListRead(msgspec.Struct, kw_only=True):
    """A chat without its messages (the reference's ``ChatListRead``)."""

    id: str
    created_at: datetime
    modified_at: datetime
    title: str | None = None
    hidden: bool = False


class ChatRead(ChatListRead, kw_only=True):
    """A chat with its messages (the reference's ``ChatRead``)."""

    messages: list[inference.MessageRead]


class StoredMessage(msgspec.Struct, kw_only=True):
    """One message as stored: what the API shows, and what only the server needs."""

    message: inference.MessageRead
    worker_compat_hash: str | None = None
    enqueued_at: float | None = None
    """``time.time()`` when it was put on the work queue (for the time to first token)."""
    worker_id: str | None = None
    error: str | None = None


class WorkerSession(msgspec.Struct, kw_only=True):
    """A connected worker, as the reference stores it in ``worker_session:{id}``."""

    id: str = msgspec.field(default_factory=lambda: str(uuid.uuid4()))
    worker_id: str
    worker_info: inference.WorkerInfo
    requests_in_flight: int = 0
    metrics: inference.WorkerMetricsInfo | None = None


_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(StoredMessage).decode
_decode_chat = msgspec.json.Decoder(ChatListRead).decode


class ChatStore:
    """Chats and messages in Redis (see the module's key table), shared by every server process."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    # ------------------------------------------------------------------ reads

    async def get_chat_info(self, chat_id: str) -> ChatListRead:
        raw = await self.redis.get(CHAT.format(chat_id))
        if raw is None:
            raise StoreError(404, "Chat not found")
        return _decode_chat(raw)

    async def _messages(self, chat_id: str, client: Any = None) -> list[StoredMessage]:
        r = client if client is not None else self.redis
        ids = await r.lrange(CHAT_MESSAGES.format(chat_id), 0, -1)
        if not ids:
            return []
        raws = await r.mget([MESSAGE.format(i.decode() if isinstance(i, bytes) else i) for i in ids])
        return [_decode_message(raw) for raw in raws if raw is not None]

    async def get_chat(self, chat_id: str) -> ChatRead:
        info = await self.get_chat_info(chat_id)
        messages = [m.message for m in await self._messages(chat_id)]
        return ChatRead(**msgspec.structs.asdict(info), messages=messages)

    async def get_stored(self, message_id: str) -> StoredMessage:
        raw = await self.redis.get(MESSAGE.format(message_id))
        if raw is None:
            raise StoreError(404, "Message not found")
        return _decode_message(raw)

    async def get_message(self, chat_id: str, message_id: str) -> StoredMessage:
        stored = await self.get_stored(message_id)
        if stored.message.chat_id != chat_id:
            raise StoreError(404, "Message not found")
        return stored

    # ------------------------------------------------------------------ writes from the chat routes

    async def create_chat(self) -> ChatListRead:
        now = utcnow()
        chat = ChatListRead(id=str(uuid.uuid4()), created_at=now, modified_at=now)
        await self.redis.set(CHAT.format(chat.id), _encode(chat), nx=True)
        return chat

    async def add_prompter_message(self, chat_id: str, parent_id: str | None, content: str) -> StoredMessage:
        """The reference's checks: a first message only in an empty chat; otherwise its parent is
        a complete assistant message of this chat."""
        chat = await self.get_chat_info(chat_id)
        message = inference.MessageRead(
            id=str(uuid.uuid4()),
            parent_id=parent_id,
            content=content,
            chat_id=chat_id,
            created_at=utcnow(),
            role="prompter",
            state=inference.MessageState.manual,
            score=0,
        )
        stored = StoredMessage(message=message)

        def check(messages: list[StoredMessage]) -> None:
            if parent_id is None:
                if messages:
                    raise StoreError(400, "Trying to add first message to non-empty chat")
                return
            parent = next((m.message for m in messages if m.message.id == parent_id), None)
            if parent is None:
                raise StoreError(400, "Parent message not found")
            if parent.role != "assistant":
                raise StoreError(400, "Parent message is not an assistant message")
            if parent.state != inference.MessageState.complete:
                raise StoreError(400, "Parent message is not complete")

        title = chat.title if chat.title is not None or parent_id is not None else content
        updated = msgspec.structs.replace(chat, modified_at=message.created_at, title=title)
        await self._append(chat_id, stored, check, updated)
        return stored

    async def add_assistant_message(
        self, chat_id: str, parent_id: str, work_parameters: inference.WorkParameters, compat_hash: str
    ) -> StoredMessage:
        """A pending assistant message answering prompter message ``parent_id``."""
        chat = await self.get_chat_info(chat_id)
        message = inference.MessageRead(
            id=str(uuid.uuid4()),
            parent_id=parent_id,
            chat_id=chat_id,
            created_at=utcnow(),
            role="assistant",
            state=inference.MessageState.pending,
            score=0,
            work_parameters=work_parameters,
        )
        stored = StoredMessage(message=message, worker_compat_hash=compat_hash, enqueued_at=time.time())

        def check(messages: list[StoredMessage]) -> None:
            parent = next((m.message for m in messages if m.message.id == parent_id), None)
            if parent is None or parent.role != "prompter":
                raise StoreError(400, "Message not found")

        await self._append(
            chat_id, stored, check, msgspec.structs.replace(chat, modified_at=message.created_at)
        )
        return stored

    async def _append(self, chat_id: str, stored: StoredMessage, check: Any, chat: ChatListRead) -> None:
        """Check the chat's messages and append ``stored``, atomically (``WATCH`` the id list)."""
        key = CHAT_MESSAGES.format(chat_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    check(await self._messages(chat_id, pipe))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(MESSAGE.format(stored.message.id), _encode(stored))
                    pipe.rpush(key, stored.message.id)
                    pipe.set(CHAT.format(chat_id), _encode(chat))
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def delete_message(self, stored: StoredMessage) -> None:
        """Undo ``add_assistant_message`` (its enqueue was refused)."""
        m = stored.message
        await self.redis.lrem(CHAT_MESSAGES.format(m.chat_id), 0, m.id)
        await self.redis.delete(MESSAGE.format(m.id))

    # ------------------------------------------------------------------ writes from the worker side

    async def _update(self, message_id: str, **changes: Any) -> StoredMessage:
        stored = await self.get_stored(message_id)
        fields = {k: v for k, v in changes.items() if k in StoredMessage.__struct_fields__}
        message = msgspec.structs.replace(
            stored.message, **{k: v for k, v in changes.items() if k not in fields}
        )
        stored = msgspec.structs.replace(stored, message=message, **fields)
        await self.redis.set(MESSAGE.format(message_id), _encode(stored))
        return stored

    async def start_work(self, message_id: str, worker_id: str) -> StoredMessage | None:
        """Mark a pending message in progress; None if it is gone or not pending (the reference
        skips it then)."""
        try:
            stored = await self.get_stored(message_id)
        except StoreError:
            return None
        if stored.message.state != inference.MessageState.pending:
            return None
        return await self._update(message_id, state=inference.MessageState.in_progress, worker_id=worker_id)

    async def reset_work(self, message_id: str) -> None:
        """Back to pending (its worker left before sending anything), as the reference."""
        await self._update(message_id, state=inference.MessageState.pending, worker_id=None)

    async def complete_work(
        self, message_id: str, content: str, used_plugin: inference.PluginUsed | None
    ) -> inference.MessageRead:
        stored = await self._update(
            message_id, state=inference.MessageState.complete, content=content, used_plugin=used_plugin
        )
        return stored.message

    async def abort_work(self, message_id: str, reason: str) -> inference.MessageRead:
        stored = await self._update(message_id, state=inference.MessageState.aborted_by_worker, error=reason)
        return stored.message

    async def store_safe_prompt(self, message_id: str, response: inference.SafePromptResponse) -> None:
        """The reference stores the worker's safe prompt on the prompter message answered."""
        stored = await self.get_stored(message_id)
        parent_id = stored.message.parent_id
        if parent_id is None:
            return
        await self._update(
            parent_id,
            safe_content=response.safe_prompt,
            safety_level=response.safety_parameters.level,
            safety_label=response.safety_label,
            safety_rots=response.safety_rots,
        )

    async def build_work_request(self, stored: StoredMessage) -> inference.WorkRequest:
        """The worker's request for an assistant message: the thread from the chat's first message
        to the message's parent (the prompter's), with the message's work parameters, as the
        reference's ``build_work_request``."""
        message = stored.message
        by_id = {m.message.id: m.message for m in await self._messages(message.chat_id)}
        thread: list[inference.MessageRead] = []
        parent_id = message.parent_id
        while parent_id is not None:
            parent = by_id.get(parent_id)
            if parent is None:
                raise StoreError(500, f"message {parent_id} of the thread is missing")
            thread.append(parent)
            parent_id = parent.parent_id
        assert message.work_parameters is not None
        return inference.WorkRequest(
            thread=inference.Thread(messages=thread[::-1]), parameters=message.work_parameters
        )

    # ------------------------------------------------------------------ worker sessions

    async def store_worker_session(self, session: WorkerSession) -> None:
        await self.redis.set(WORKER_SESSION.format(session.id), _encode(session))

    async def delete_worker_session(self, session_id: str) -> None:
        await self.redis.delete(WORKER_SESSION.format(session_id))
