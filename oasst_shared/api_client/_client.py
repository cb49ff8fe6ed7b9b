"""``OasstApiClient``: one typed method per backend endpoint a frontend, bot or script uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from oasst_shared.api_client._base import BaseApiClient
from oasst_shared.api_client._models import CreateApiClientRequest, UserStatsTimeFrame, ValidLabelsResponse
from oasst_shared.api_client._request import path_segment, query
from oasst_shared.api_client._response import decode_answer
from oasst_shared.schemas import protocol

__all__ = ["OasstApiClient"]

# Decoders are built once: each decodes an answer's bytes straight into the typed result.
_any: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_task: msgspec.json.Decoder[protocol.AnyTask] = msgspec.json.Decoder(protocol.AnyTask)
_task_done = msgspec.json.Decoder(protocol.TaskDone)
_availability = msgspec.json.Decoder(dict[str, int])
_valid_labels = msgspec.json.Decoder(ValidLabelsResponse)
_message = msgspec.json.Decoder(protocol.Message)
_message_or_none: msgspec.json.Decoder[protocol.Message | None] = msgspec.json.Decoder(
    protocol.Message | None
)
_messages = msgspec.json.Decoder(list[protocol.Message])
_message_page = msgspec.json.Decoder(protocol.MessagePage)
_conversation = msgspec.json.Decoder(protocol.Conversation)
_tree = msgspec.json.Decoder(protocol.MessageTree)
_user = msgspec.json.Decoder(protocol.FrontEndUser)
_users = msgspec.json.Decoder(list[protocol.FrontEndUser])
_user_page = msgspec.json.Decoder(protocol.FrontEndUserPage)
_user_stats = msgspec.json.Decoder(dict[str, protocol.UserScore])
_user_score = msgspec.json.Decoder(protocol.UserScore)
_system_stats = msgspec.json.Decoder(protocol.SystemStats)
_cached_stats = msgspec.json.Decoder(protocol.CachedStatsResponse)
_all_cached_stats = msgspec.json.Decoder(protocol.AllCachedStatsResponse)
_leaderboard = msgspec.json.Decoder(protocol.LeaderboardStats)
_trollboard = msgspec.json.Decoder(protocol.TrollboardStats)
_string = msgspec.json.Decoder(str)

_V1 = "/api/v1"

UserRef = protocol.User | str | None
"""The frontend user an endpoint acts for (``x-oasst-user``): a ``User``, or ``"auth_method:id"``."""


def _seg(value: str | UUID | protocol.CachedStatsName | UserStatsTimeFrame) -> str:
    return path_segment(value)


class OasstApiClient(BaseApiClient):
    """Async client of the Open-Assistant backend (httpx; runs under asyncio and trio).

        async with OasstApiClient("http://localhost:8080", api_key) as client:
            task = await client.fetch_random_task(user=user)
            await client.ack_task(task.id, message_id="frontend-msg-1")

    * ``session``: an ``httpx.AsyncClient`` of the caller, which ``close()`` leaves open;
      by default the client makes its own and closes it.
    * ``timeout``: the most one method call may take, retries and waits included (seconds);
      ``connect_timeout`` bounds each connection attempt.
    * ``max_retries``, ``retry_initial_delay``, ``retry_max_delay``: see
      ``oasst_shared.api_client.RetryPolicy``. 429 and 503 answers and refused connections
      are retried (after ``Retry-After`` when given); a POST that may have reached the
      backend is never sent twice.
    * ``oasst_user``: default ``x-oasst-user`` for the endpoints that accept it (a per-call
      ``user=`` wins); ``bearer_token``: a root token, for ``create_api_client`` only.
    * ``max_response_bytes``: the largest answer body read (decoded bytes; default 32 MiB,
      ``None``: no limit). A larger answer, announced by ``Content-Length`` or found while
      reading, raises ``OasstApiResponseError`` (with its ``status_code``) without reading
      the rest, and is not retried.
    * ``transport``: the ``httpx.AsyncBaseTransport`` of the client's own session, e.g. an
      ``httpx.MockTransport`` in tests (not with ``session``, which has its own).
    * ``clock``: what the retry loop reads the time from and waits on (``Clock``); by default
      the event loop's. Tests give one that records the waits instead of waiting.

    Results are the protocol structs (tasks as their concrete class, by ``type``). Failures
    raise ``OasstError`` subclasses, see ``oasst_shared.api_client``.
    """

    # ------------------------------------------------------------------ generic (reference)

    async def post(self, path: str, data: Any) -> Any:
        """POST ``data`` (a dict or a struct) as JSON to ``path``; the decoded JSON answer.

        ``None`` when the answer has no body (204). ``path`` starts with ``/`` and is
        appended to ``backend_url``.
        """
        answer = await self._send("POST", path, body=data)
        return decode_answer(answer, _any) if answer.content.strip() else None

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` (with query ``params``); the decoded JSON answer, ``None`` when empty."""
        answer = await self._send("GET", path, params=params)
        return decode_answer(answer, _any) if answer.content.strip() else None

    async def put(self, path: str, data: Any = None, params: dict[str, Any] | None = None) -> Any:
        """PUT ``data`` (when given) as JSON to ``path`` with query ``params``; the decoded JSON
        answer, ``None`` when empty. PUT is idempotent, so failed attempts are retried."""
        answer = await self._send("PUT", path, body=data, params=params)
        return decode_answer(answer, _any) if answer.content.strip() else None

    async def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """DELETE ``path`` (with query ``params``); the decoded JSON answer, ``None`` when empty."""
        answer = await self._send("DELETE", path, params=params)
        return decode_answer(answer, _any) if answer.content.strip() else None

    # ------------------------------------------------------------------------------ tasks

    async def fetch_task(
        self,
        task_type: protocol.TaskRequestType | str,
        user: protocol.User | None = None,
        collective: bool = False,
        lang: str | None = None,
    ) -> protocol.AnyTask:
        """Request a task of ``task_type`` for ``user`` (``POST /api/v1/tasks/``)."""
        request = protocol.TaskRequest(
            type=protocol.TaskRequestType(task_type), user=user, collective=collective, lang=lang
        )
        return await self._call("POST", f"{_V1}/tasks/", _task, body=request)

    async def fetch_random_task(
        self, user: protocol.User | None = None, collective: bool = False, lang: str | None = None
    ) -> protocol.AnyTask:
        """Request a task of any type for ``user``."""
        return await self.fetch_task(protocol.TaskRequestType.random, user, collective, lang)

    async def ack_task(self, task_id: str | UUID, message_id: str, *, user: UserRef = None) -> None:
        """Tell the backend the task was shown; ``message_id`` is the frontend's message id."""
        path = f"{_V1}/tasks/{_seg(task_id)}/ack"
        await self._call_no_content(
            "POST", path, body=protocol.TaskAck(message_id=message_id), user=user, allows_user=True
        )

    async def nack_task(self, task_id: str | UUID, reason: str | None, *, user: UserRef = None) -> None:
        """Tell the backend the task could not be shown, and why."""
        path = f"{_V1}/tasks/{_seg(task_id)}/nack"
        await self._call_no_content(
            "POST", path, body=protocol.TaskNAck(reason=reason), user=user, allows_user=True
        )

    async def post_interaction(self, interaction: protocol.AnyInteraction) -> protocol.AnyTask:
        """Send the user's answer to a task; the backend's next task (often ``TaskDone``)."""
        return await self._call("POST", f"{_V1}/tasks/interaction", _task, body=interaction)

    async def fetch_task_availability(
        self, user: protocol.User | None = None, lang: str | None = None
    ) -> dict[str, int]:
        """How many tasks of each type are available (for ``user``, in ``lang``)."""
        return await self._call(
            "POST", f"{_V1}/tasks/availability", _availability, body=user, params=query(lang=lang)
        )

    async def close_task(self, message_id: str) -> protocol.TaskDone:
        """Mark the task of the frontend message ``message_id`` done."""
        body = protocol.TaskClose(message_id=message_id)
        return await self._call("POST", f"{_V1}/tasks/close", _task_done, body=body)

    # ------------------------------------------------------------------------- text labels

    async def post_text_labels(self, text_labels: protocol.TextLabels) -> None:
        """Store labels of a message outside of a task (``POST /api/v1/text_labels/``)."""
        await self._call_no_content("POST", f"{_V1}/text_labels/", body=text_labels)

    async def fetch_valid_text_labels(self, message_id: str | UUID | None = None) -> ValidLabelsResponse:
        """The labels a message (or, without ``message_id``, any message) may be given."""
        params = query(message_id=message_id)
        return await self._call("GET", f"{_V1}/text_labels/valid_labels", _valid_labels, params=params)

    async def fetch_report_text_labels(self) -> ValidLabelsResponse:
        """The labels a user may give when reporting a message."""
        return await self._call("GET", f"{_V1}/text_labels/report_labels", _valid_labels)

    # ----------------------------------------------------------------- messages (by id)

    async def fetch_message(self, message_id: str | UUID, *, user: UserRef = None) -> protocol.Message:
        """The message ``message_id`` (backend UUID)."""
        path = f"{_V1}/messages/{_seg(message_id)}"
        return await self._call("GET", path, _message, user=user, allows_user=True)

    async def fetch_message_conversation(
        self, message_id: str | UUID, *, user: UserRef = None
    ) -> protocol.Conversation:
        """The conversation that ends with message ``message_id``, oldest message first."""
        path = f"{_V1}/messages/{_seg(message_id)}/conversation"
        return await self._call("GET", path, _conversation, user=user, allows_user=True)

    async def fetch_message_tree(
        self,
        message_id: str | UUID,
        *,
        include_spam: bool | None = None,
        include_deleted: bool | None = None,
        user: UserRef = None,
    ) -> protocol.MessageTree:
        """Every message of the tree that message ``message_id`` belongs to."""
        path = f"{_V1}/messages/{_seg(message_id)}/tree"
        params = query(include_spam=include_spam, include_deleted=include_deleted)
        return await self._call("GET", path, _tree, params=params, user=user, allows_user=True)

    async def fetch_message_children(
        self, message_id: str | UUID, *, user: UserRef = None
    ) -> list[protocol.Message]:
        """The direct replies to message ``message_id``."""
        path = f"{_V1}/messages/{_seg(message_id)}/children"
        return await self._call("GET", path, _messages, user=user, allows_user=True)

    async def fetch_message_descendants(
        self, message_id: str | UUID, *, user: UserRef = None
    ) -> protocol.MessageTree:
        """The subtree under message ``message_id`` (the message included)."""
        path = f"{_V1}/messages/{_seg(message_id)}/descendants"
        return await self._call("GET", path, _tree, user=user, allows_user=True)

    async def fetch_longest_conversation(
        self, message_id: str | UUID, *, user: UserRef = None
    ) -> protocol.Conversation:
        """The longest conversation of the tree of message ``message_id``."""
        path = f"{_V1}/messages/{_seg(message_id)}/longest_conversation_in_tree"
        return await self._call("GET", path, _conversation, user=user, allows_user=True)

    async def fetch_max_children(
        self, message_id: str | UUID, *, user: UserRef = None
    ) -> protocol.MessageTree:
        """The message with the most replies in the tree of ``message_id``, with its replies."""
        path = f"{_V1}/messages/{_seg(message_id)}/max_children_in_tree"
        return await self._call("GET", path, _tree, user=user, allows_user=True)

    async def post_message_emoji(
        self,
        message_id: str | UUID,
        emoji: protocol.EmojiCode,
        user: protocol.User,
        op: protocol.EmojiOp = protocol.EmojiOp.togggle,
    ) -> protocol.Message | None:
        """Toggle, add or remove ``user``'s ``emoji`` on a message; the updated message.

        ``None`` when the answer's body is ``null``: the OpenAPI spec leaves the body of this
        202 answer unspecified, while the backend sends the message.
        """
        path = f"{_V1}/messages/{_seg(message_id)}/emoji"
        body = protocol.MessageEmojiRequest(user=user, op=op, emoji=emoji)
        return await self._call("POST", path, _message_or_none, body=body)

    # ----------------------------------------------------------- messages (by frontend id)

    async def delete_message(self, message_id: str | UUID, *, user: UserRef = None) -> None:
        """Mark a message deleted (``DELETE /api/v1/messages/{message_id}``)."""
        path = f"{_V1}/messages/{_seg(message_id)}"
        await self._call_no_content("DELETE", path, user=user, allows_user=True)

    async def undelete_message(self, message_id: str | UUID, *, user: UserRef = None) -> None:
        """Restore a message marked deleted (``PUT /api/v1/messages/{message_id}/undelete``)."""
        path = f"{_V1}/messages/{_seg(message_id)}/undelete"
        await self._call_no_content("PUT", path, user=user, allows_user=True)

    async def fetch_frontend_message(self, frontend_message_id: str) -> protocol.Message:
        """The message with the frontend's id ``frontend_message_id``."""
        return await self._call("GET", f"{_V1}/frontend_messages/{_seg(frontend_message_id)}", _message)

    async def fetch_frontend_message_conversation(self, frontend_message_id: str) -> protocol.Conversation:
        """The conversation that ends with the message of frontend id ``frontend_message_id``."""
        path = f"{_V1}/frontend_messages/{_seg(frontend_message_id)}/conversation"
        return await self._call("GET", path, _conversation)

    async def fetch_frontend_message_tree(
        self,
        frontend_message_id: str,
        *,
        include_spam: bool | None = None,
        include_deleted: bool | None = None,
    ) -> protocol.MessageTree:
        """Every message of the tree of the message with frontend id ``frontend_message_id``."""
        path = f"{_V1}/frontend_messages/{_seg(frontend_message_id)}/tree"
        params = query(include_spam=include_spam, include_deleted=include_deleted)
        return await self._call("GET", path, _tree, params=params)

    async def fetch_frontend_message_children(self, frontend_message_id: str) -> list[protocol.Message]:
        """The direct replies to the message with frontend id ``frontend_message_id``."""
        path = f"{_V1}/frontend_messages/{_seg(frontend_message_id)}/children"
        return await self._call("GET", path, _messages)

    async def fetch_frontend_message_descendants(self, frontend_message_id: str) -> protocol.MessageTree:
        """The subtree under the message with frontend id ``frontend_message_id``."""
        path = f"{_V1}/frontend_messages/{_seg(frontend_message_id)}/descendants"
        return await self._call("GET", path, _tree)

    # ------------------------------------------------------------------------------ users

    async def fetch_user(
        self, user_id: str | UUID, *, api_client_id: str | UUID | None = None
    ) -> protocol.FrontEndUser:
        """The user with backend id ``user_id``."""
        path = f"{_V1}/users/{_seg(user_id)}"
        return await self._call("GET", path, _user, params=query(api_client_id=api_client_id))

    async def fetch_users_by_username(
        self,
        *,
        api_client_id: str | UUID | None = None,
        gte_username: str | None = None,
        gt_id: str | UUID | None = None,
        lte_username: str | None = None,
        lt_id: str | UUID | None = None,
        search_text: str | None = None,
        auth_method: str | None = None,
        max_count: int | None = None,
        desc: bool | None = None,
    ) -> list[protocol.FrontEndUser]:
        """Users ordered by username, from the given bounds."""
        params = query(
            api_client_id=api_client_id,
            gte_username=gte_username,
            gt_id=gt_id,
            lte_username=lte_username,
            lt_id=lt_id,
            search_text=search_text,
            auth_method=auth_method,
            max_count=max_count,
            desc=desc,
        )
        return await self._call("GET", f"{_V1}/users/by_username", _users, params=params)

    async def fetch_users_by_display_name(
        self,
        *,
        api_client_id: str | UUID | None = None,
        gte_display_name: str | None = None,
        gt_id: str | UUID | None = None,
        lte_display_name: str | None = None,
        lt_id: str | UUID | None = None,
        auth_method: str | None = None,
        search_text: str | None = None,
        max_count: int | None = None,
        desc: bool | None = None,
    ) -> list[protocol.FrontEndUser]:
        """Users ordered by display name, from the given bounds."""
        params = query(
            api_client_id=api_client_id,
            gte_display_name=gte_display_name,
            gt_id=gt_id,
            lte_display_name=lte_display_name,
            lt_id=lt_id,
            auth_method=auth_method,
            search_text=search_text,
            max_count=max_count,
            desc=desc,
        )
        return await self._call("GET", f"{_V1}/users/by_display_name", _users, params=params)

    async def fetch_users_cursor(
        self,
        *,
        before: str | None = None,
        after: str | None = None,
        sort_key: str | None = None,
        max_count: int | None = None,
        api_client_id: str | UUID | None = None,
        search_text: str | None = None,
        auth_method: str | None = None,
    ) -> protocol.FrontEndUserPage:
        """A page of users; pass the previous page's ``next`` as ``after`` for the next one."""
        params = query(
            before=before,
            after=after,
            sort_key=sort_key,
            max_count=max_count,
            api_client_id=api_client_id,
            search_text=search_text,
            auth_method=auth_method,
        )
        return await self._call("GET", f"{_V1}/users/cursor", _user_page, params=params)

    async def fetch_user_messages(
        self,
        user_id: str | UUID,
        *,
        api_client_id: str | UUID | None = None,
        max_count: int | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        only_roots: bool | None = None,
        desc: bool | None = None,
        include_deleted: bool | None = None,
        lang: str | None = None,
        user: UserRef = None,
    ) -> list[protocol.Message]:
        """Messages written by the user with backend id ``user_id``."""
        params = query(
            api_client_id=api_client_id,
            max_count=max_count,
            start_date=start_date,
            end_date=end_date,
            only_roots=only_roots,
            desc=desc,
            include_deleted=include_deleted,
            lang=lang,
        )
        path = f"{_V1}/users/{_seg(user_id)}/messages"
        return await self._call("GET", path, _messages, params=params, user=user, allows_user=True)

    async def fetch_user_messages_cursor(
        self,
        user_id: str | UUID,
        *,
        before: str | None = None,
        after: str | None = None,
        only_roots: bool | None = None,
        include_deleted: bool | None = None,
        max_count: int | None = None,
        desc: bool | None = None,
        lang: str | None = None,
        user: UserRef = None,
    ) -> protocol.MessagePage:
        """A page of the messages written by the user with backend id ``user_id``."""
        params = query(
            before=before,
            after=after,
            only_roots=only_roots,
            include_deleted=include_deleted,
            max_count=max_count,
            desc=desc,
            lang=lang,
        )
        path = f"{_V1}/users/{_seg(user_id)}/messages/cursor"
        return await self._call("GET", path, _message_page, params=params, user=user, allows_user=True)

    async def fetch_user_stats(self, user_id: str | UUID) -> dict[str, protocol.UserScore]:
        """The user's scores by time frame (``"day"``, ``"week"``, ``"month"``, ``"total"``)."""
        return await self._call("GET", f"{_V1}/users/{_seg(user_id)}/stats", _user_stats)

    async def fetch_user_stats_time_frame(
        self, user_id: str | UUID, time_frame: UserStatsTimeFrame | str
    ) -> protocol.UserScore:
        """The user's score in one time frame."""
        frame = UserStatsTimeFrame(time_frame)
        return await self._call("GET", f"{_V1}/users/{_seg(user_id)}/stats/{_seg(frame)}", _user_score)

    async def update_user(
        self,
        user_id: str | UUID,
        *,
        enabled: bool | None = None,
        notes: str | None = None,
        show_on_leaderboard: bool | None = None,
        tos_acceptance: bool | None = None,
    ) -> None:
        """Change the given settings of a user (``PUT /api/v1/users/{user_id}``); the others
        stay as they are. ``tos_acceptance=True`` records that the terms were accepted now."""
        params = query(
            enabled=enabled,
            notes=notes,
            show_on_leaderboard=show_on_leaderboard,
            tos_acceptance=tos_acceptance,
        )
        if all(value is None for value in params.values()):
            raise ValueError("update_user: give at least one setting to change")
        await self._call_no_content("PUT", f"{_V1}/users/{_seg(user_id)}", params=params)

    async def delete_user(self, user_id: str | UUID) -> None:
        """Delete a user (``DELETE /api/v1/users/{user_id}``)."""
        await self._call_no_content("DELETE", f"{_V1}/users/{_seg(user_id)}")

    async def delete_user_messages(self, user_id: str | UUID, *, user: UserRef = None) -> None:
        """Mark every message of a user deleted (``DELETE /api/v1/users/{user_id}/messages``)."""
        path = f"{_V1}/users/{_seg(user_id)}/messages"
        await self._call_no_content("DELETE", path, user=user, allows_user=True)

    # --------------------------------------------------------------------- frontend users

    async def fetch_frontend_users(
        self,
        *,
        api_client_id: str | UUID | None = None,
        gte_username: str | None = None,
        gt_id: str | UUID | None = None,
        lte_username: str | None = None,
        lt_id: str | UUID | None = None,
        search_text: str | None = None,
        auth_method: str | None = None,
        max_count: int | None = None,
    ) -> list[protocol.FrontEndUser]:
        """Users ordered by their frontend username (``GET /api/v1/frontend_users/``)."""
        params = query(
            api_client_id=api_client_id,
            gte_username=gte_username,
            gt_id=gt_id,
            lte_username=lte_username,
            lt_id=lt_id,
            search_text=search_text,
            auth_method=auth_method,
            max_count=max_count,
        )
        return await self._call("GET", f"{_V1}/frontend_users/", _users, params=params)

    async def create_frontend_user(
        self, request: protocol.CreateFrontendUserRequest
    ) -> protocol.FrontEndUser:
        """Create (or update) the frontend user described by ``request``."""
        return await self._call("POST", f"{_V1}/frontend_users/", _user, body=request)

    async def fetch_frontend_user(
        self, auth_method: str, username: str, *, api_client_id: str | UUID | None = None
    ) -> protocol.FrontEndUser:
        """The user known to the frontend as ``username`` (signed in with ``auth_method``)."""
        path = f"{_V1}/frontend_users/{_seg(auth_method)}/{_seg(username)}"
        return await self._call("GET", path, _user, params=query(api_client_id=api_client_id))

    async def fetch_frontend_user_messages(
        self,
        auth_method: str,
        username: str,
        *,
        api_client_id: str | UUID | None = None,
        max_count: int | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        only_roots: bool | None = None,
        desc: bool | None = None,
        include_deleted: bool | None = None,
        lang: str | None = None,
    ) -> list[protocol.Message]:
        """Messages written by the frontend user ``auth_method``/``username``."""
        params = query(
            api_client_id=api_client_id,
            max_count=max_count,
            start_date=start_date,
            end_date=end_date,
            only_roots=only_roots,
            desc=desc,
            include_deleted=include_deleted,
            lang=lang,
        )
        path = f"{_V1}/frontend_users/{_seg(auth_method)}/{_seg(username)}/messages"
        return await self._call("GET", path, _messages, params=params)

    async def fetch_frontend_user_messages_cursor(
        self,
        auth_method: str,
        username: str,
        *,
        before: str | None = None,
        after: str | None = None,
        only_roots: bool | None = None,
        include_deleted: bool | None = None,
        max_count: int | None = None,
        desc: bool | None = None,
        lang: str | None = None,
        user: UserRef = None,
    ) -> protocol.MessagePage:
        """A page of the messages written by the frontend user ``auth_method``/``username``."""
        params = query(
            before=before,
            after=after,
            only_roots=only_roots,
            include_deleted=include_deleted,
            max_count=max_count,
            desc=desc,
            lang=lang,
        )
        path = f"{_V1}/frontend_users/{_seg(auth_method)}/{_seg(username)}/messages/cursor"
        return await self._call("GET", path, _message_page, params=params, user=user, allows_user=True)

    async def delete_frontend_user_messages(self, auth_method: str, username: str) -> None:
        """Mark every message of the user known to the frontend as ``username`` deleted."""
        path = f"{_V1}/frontend_users/{_seg(auth_method)}/{_seg(username)}/messages"
        await self._call_no_content("DELETE", path)

    # ------------------------------------------------------------------------------ stats

    async def fetch_system_stats(self) -> protocol.SystemStats:
        """Message counts of the whole system."""
        return await self._call("GET", f"{_V1}/stats/", _system_stats)

    async def fetch_cached_stats(self, name: protocol.CachedStatsName | str) -> protocol.CachedStatsResponse:
        """One of the backend's cached statistics."""
        path = f"{_V1}/stats/cached/{_seg(protocol.CachedStatsName(name))}"
        return await self._call("GET", path, _cached_stats)

    async def fetch_all_cached_stats(self) -> protocol.AllCachedStatsResponse:
        """All of the backend's cached statistics, by name."""
        return await self._call("GET", f"{_V1}/stats/cached", _all_cached_stats)

    async def fetch_leaderboard(
        self,
        time_frame: UserStatsTimeFrame | str,
        *,
        max_count: int | None = None,
        user: UserRef = None,
    ) -> protocol.LeaderboardStats:
        """The leaderboard of a time frame (``user`` is highlighted when given)."""
        path = f"{_V1}/leaderboards/{_seg(UserStatsTimeFrame(time_frame))}"
        params = query(max_count=max_count)
        return await self._call("GET", path, _leaderboard, params=params, user=user, allows_user=True)

    async def fetch_trollboard(
        self,
        time_frame: UserStatsTimeFrame | str,
        *,
        max_count: int | None = None,
        enabled: bool | None = None,
    ) -> protocol.TrollboardStats:
        """The trollboard of a time frame (only enabled or disabled users when ``enabled`` is given)."""
        path = f"{_V1}/trollboards/{_seg(UserStatsTimeFrame(time_frame))}"
        params = query(max_count=max_count, enabled=enabled)
        return await self._call("GET", path, _trollboard, params=params)

    # ------------------------------------------------------------------------------ admin

    async def create_api_client(
        self,
        description: str,
        frontend_type: str,
        *,
        trusted: bool = False,
        admin_email: str | None = None,
    ) -> str:
        """Create an API client; its new API key. Needs the client's ``bearer_token`` (a root token)."""
        body = CreateApiClientRequest(
            description=description, frontend_type=frontend_type, trusted=trusted, admin_email=admin_email
        )
        return await self._call("POST", f"{_V1}/admin/api_client", _string, body=body, bearer=True)
