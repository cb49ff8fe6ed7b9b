"""The backend protocol: users, messages, tasks, interactions, stats, labels and emoji.

Every model of the reference's ``oasst_shared.schemas.protocol`` as a msgspec Struct with the
same name, fields, defaults and wire format. Tasks and interactions are tagged on ``type``:
``msgspec.json.decode(data, type=AnyTask)`` picks the member by its tag in one pass, and
``task.type`` reads the tag. See ``oasst_shared.schemas.base`` for the struct options.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Union
from uuid import UUID, uuid4

from msgspec import Meta, field

from oasst_shared._schema_docs import schema_without_docstring
from oasst_shared.exceptions.error_codes import OasstErrorCode
from oasst_shared.schemas.base import OasstStruct

AuthMethod = Literal["discord", "google", "local", "system"]


# --------------------------------------------------------------------------------------- users


class User(OasstStruct, kw_only=True, gc=False):
    """A user as a frontend identifies them to the backend: ``id`` is the user's id with that
    frontend (e.g. a Discord id), ``auth_method`` how they signed in.
    """

    id: str
    display_name: str
    auth_method: AuthMethod


class Account(OasstStruct, kw_only=True, gc=False):
    """An external login account of a user: the ``provider`` and the user's id there
    (``provider_account_id``).
    """

    id: UUID
    provider: str
    provider_account_id: str


class Token(OasstStruct, kw_only=True, gc=False):
    """An access token and its ``token_type``, as the inference server's ``GET /auth/refresh`` returns it."""

    access_token: str
    token_type: str


class TokenPair(OasstStruct, kw_only=True):
    """The access and refresh tokens the inference server's login callbacks
    (``GET /auth/callback/...``) return.
    """

    access_token: Token
    refresh_token: Token


class FrontEndUser(User, kw_only=True, gc=False):
    """A user as the backend stores and returns it (``GET /api/v1/frontend_users/...``,
    ``/api/v1/users/...``). ``user_id`` is the backend's id of the user; ``id`` and ``auth_method``
    are the frontend identity of ``User``.
    """

    user_id: UUID
    enabled: bool
    deleted: bool
    notes: str
    created_date: datetime | None = None
    show_on_leaderboard: bool
    streak_days: int | None = None
    streak_last_day_date: datetime | None = None
    last_activity_date: datetime | None = None
    tos_acceptance_date: datetime | None = None


class PageResult(OasstStruct, kw_only=True):
    """A page of a cursor-paginated listing; subclasses type ``items``."""

    prev: str | None = None
    next: str | None = None
    sort_key: str
    items: list[Any]
    order: Literal["asc", "desc"]


class FrontEndUserPage(PageResult, kw_only=True):
    """A page of ``FrontEndUser``s from the backend's cursor listing ``GET /api/v1/users/cursor``."""

    items: list[FrontEndUser]


# ------------------------------------------------------------------------------------ messages


class ConversationMessage(OasstStruct, kw_only=True):
    """A message of a conversation as shown to a user in a task."""

    id: UUID | None = None
    user_id: UUID | None = None
    frontend_message_id: str | None = None
    text: str
    lang: str | None = None
    is_assistant: bool
    emojis: dict[str, int] | None = None
    user_emojis: list[str] | None = None
    user_is_author: bool | None = None
    synthetic: bool | None = None


class Conversation(OasstStruct, kw_only=True):
    """The messages of a thread, oldest first."""

    messages: list[ConversationMessage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def is_prompter_turn(self) -> bool:
        """True when the next message is the prompter's (empty, or last one by the assistant)."""
        if not self.messages:
            return True
        return self.messages[-1].is_assistant


class Message(ConversationMessage, kw_only=True):
    """A message as the backend stores and returns it (``GET /api/v1/messages/...``): the
    conversation fields, its place in the tree (``parent_id``, ``message_tree_id``), its review and
    ranking state, and its author as ``user``.
    """

    parent_id: UUID | None = None
    created_date: datetime | None = None
    review_result: bool | None = None
    review_count: int | None = None
    deleted: bool | None = None
    edited: bool | None = None
    model_name: str | None = None
    message_tree_id: UUID | None = None
    ranking_count: int | None = None
    rank: int | None = None
    user: FrontEndUser | None = None


class MessageRevision(OasstStruct, kw_only=True, gc=False):
    """A revision of a message's text: ``message_id`` is the revised message, ``user_id`` the
    revision's author.
    """

    id: UUID
    text: str
    message_id: UUID
    user_id: UUID | None = None
    created_date: datetime | None = None
    user_is_author: bool | None = None


class MessagePage(PageResult, kw_only=True):
    """A page of ``Message``s from the backend's cursor listings (``GET /api/v1/messages/cursor``
    and the per-user variants).
    """

    items: list[Message]


class MessageTree(OasstStruct, kw_only=True):
    """All messages of a message tree."""

    id: UUID
    messages: list[Message] = field(default_factory=list)


# ------------------------------------------------------------------------------- task requests


class TaskRequestType(str, enum.Enum):
    """The task types a frontend can ask for in ``TaskRequest.type``; ``random`` leaves the
    choice to the backend.
    """

    __get_pydantic_json_schema__ = schema_without_docstring

    random = "random"
    summarize_story = "summarize_story"
    rate_summary = "rate_summary"
    initial_prompt = "initial_prompt"
    prompter_reply = "prompter_reply"
    assistant_reply = "assistant_reply"
    rank_initial_prompts = "rank_initial_prompts"
    rank_prompter_replies = "rank_prompter_replies"
    rank_assistant_replies = "rank_assistant_replies"
    label_initial_prompt = "label_initial_prompt"
    label_assistant_reply = "label_assistant_reply"
    label_prompter_reply = "label_prompter_reply"


class TaskRequest(OasstStruct, kw_only=True):
    """The frontend asks the backend for a task of a type."""

    type: TaskRequestType = TaskRequestType.random
    user: User | None = None
    collective: bool = False
    lang: str | None = None


class TaskAck(OasstStruct, kw_only=True, gc=False):
    """The frontend acknowledges that it showed a task to the user."""

    message_id: str


class TaskNAck(OasstStruct, kw_only=True, gc=False):
    """The frontend could not show a task."""

    reason: str | None = None


class TaskClose(OasstStruct, kw_only=True, gc=False):
    """The frontend asks to mark a task done."""

    message_id: str


# ------------------------------------------------------------------------------------- tasks


class Task(OasstStruct, kw_only=True):
    """Base of the tasks the backend hands out; never sent on its own.

    Each concrete task is tagged on ``type`` (``AnyTask`` decodes by that tag) and exposes the
    tag as ``task.type``.
    """

    type: ClassVar[str]

    id: UUID = field(default_factory=uuid4)


class SummarizeStoryTask(Task, kw_only=True, tag_field="type", tag="summarize_story"):
    """A task to summarize ``story``. Tag: ``type="summarize_story"``."""

    story: str


class RatingScale(OasstStruct, kw_only=True, gc=False):
    """The scale a rating task asks the user to rate on, ``min`` to ``max`` (1 to 5 unless set)."""

    min: int
    max: int


def default_rating_scale() -> RatingScale:
    """The rating scale of a task that names none: 1 to 5."""
    return RatingScale(min=1, max=5)


class AbstractRatingTask(Task, kw_only=True):
    """Base of the tasks that ask for a rating on ``scale``; never sent on its own."""

    scale: RatingScale = field(default_factory=default_rating_scale)


class RateSummaryTask(AbstractRatingTask, kw_only=True, tag_field="type", tag="rate_summary"):
    """A task to rate ``summary``, a summary of ``full_text``, on the task's ``scale``.
    Tag: ``type="rate_summary"``.
    """

    full_text: str
    summary: str


class WithHintMixin(OasstStruct, kw_only=True, gc=False):
    """The optional ``hint`` some tasks carry.

    msgspec structs cannot inherit fields from two struct bases, so the hinted tasks
    (``InitialPromptTask``, ``PrompterReplyTask``) declare ``hint`` themselves and are not
    subclasses of this one.
    """

    hint: str | None = None


class InitialPromptTask(Task, kw_only=True, tag_field="type", tag="initial_prompt"):
    """A task to prompt the user to submit an initial prompt to the assistant."""

    hint: str | None = None


class ReplyToConversationTask(Task, kw_only=True, tag_field="type", tag="reply_to_conversation"):
    """A task to prompt the user to submit a reply to a conversation."""

    conversation: Conversation


class PrompterReplyTask(ReplyToConversationTask, kw_only=True, tag="prompter_reply"):
    """A task to prompt the user to submit a reply to the assistant."""

    hint: str | None = None


class AssistantReplyTask(ReplyToConversationTask, kw_only=True, tag="assistant_reply"):
    """A task to prompt the user to act as the assistant."""


class RankInitialPromptsTask(Task, kw_only=True, tag_field="type", tag="rank_initial_prompts"):
    """A task to rank a set of initial prompts."""

    prompts: list[str]  # deprecated, use prompt_messages
    prompt_messages: list[ConversationMessage]


class RankConversationRepliesTask(Task, kw_only=True, tag_field="type", tag="rank_conversation_replies"):
    """A task to rank a set of replies to a conversation."""

    conversation: Conversation
    replies: list[str]  # deprecated, use reply_messages
    reply_messages: list[ConversationMessage]
    message_tree_id: UUID
    ranking_parent_id: UUID
    reveal_synthetic: bool


class RankPrompterRepliesTask(RankConversationRepliesTask, kw_only=True, tag="rank_prompter_replies"):
    """A task to rank a set of prompter replies to a conversation."""


class RankAssistantRepliesTask(RankConversationRepliesTask, kw_only=True, tag="rank_assistant_replies"):
    """A task to rank a set of assistant replies to a conversation."""


class LabelTaskMode(str, enum.Enum):
    """Label task mode that allows frontends to select an appropriate UI."""

    __get_pydantic_json_schema__ = schema_without_docstring

    simple = "simple"
    full = "full"


class LabelTaskDisposition(str, enum.Enum):
    """Reason why the task was issued."""

    __get_pydantic_json_schema__ = schema_without_docstring

    quality = "quality"
    spam = "spam"


class LabelDescription(OasstStruct, kw_only=True, gc=False):
    """How a frontend shows one label of a label task: ``name`` is the label (a ``TextLabel``
    value), ``widget`` a ``LabelWidget`` value, with the text to display and optional help.
    """

    name: str
    widget: str
    display_text: str
    help_text: str | None = None


class AbstractLabelTask(Task, kw_only=True):
    """Base of the tasks that ask the user to label message ``message_id`` (the last message
    of ``conversation``) with labels out of ``valid_labels``; never sent on its own.
    """

    message_id: UUID
    valid_labels: list[str]
    mandatory_labels: list[str] | None = None
    mode: LabelTaskMode | None = None
    disposition: LabelTaskDisposition | None = None
    labels: list[LabelDescription] | None = None
    conversation: Conversation  # the conversation so far (labelling -> last message)


class LabelInitialPromptTask(AbstractLabelTask, kw_only=True, tag_field="type", tag="label_initial_prompt"):
    """A task to label an initial prompt."""

    prompt: str | None = None  # deprecated, use conversation


class LabelConversationReplyTask(
    AbstractLabelTask, kw_only=True, tag_field="type", tag="label_conversation_reply"
):
    """A task to label a reply to a conversation."""

    reply: str | None = None  # deprecated, use conversation


class LabelPrompterReplyTask(LabelConversationReplyTask, kw_only=True, tag="label_prompter_reply"):
    """A task to label a prompter reply to a conversation."""


class LabelAssistantReplyTask(LabelConversationReplyTask, kw_only=True, tag="label_assistant_reply"):
    """A task to label an assistant reply to a conversation."""


class TaskDone(Task, kw_only=True, tag_field="type", tag="task_done"):
    """Signals to the frontend that the task is done."""


AnyTask = Union[
    TaskDone,
    SummarizeStoryTask,
    RateSummaryTask,
    InitialPromptTask,
    ReplyToConversationTask,
    PrompterReplyTask,
    AssistantReplyTask,
    RankInitialPromptsTask,
    RankConversationRepliesTask,
    RankPrompterRepliesTask,
    RankAssistantRepliesTask,
    LabelInitialPromptTask,
    LabelConversationReplyTask,
    LabelPrompterReplyTask,
    LabelAssistantReplyTask,
]
"""Any concrete task, chosen by its ``type`` tag when decoded."""


# ------------------------------------------------------------------------------ interactions


class Interaction(OasstStruct, kw_only=True):
    """Base of what a user sends back for a task; never sent on its own.

    Each concrete interaction is tagged on ``type`` and exposes the tag as ``.type``.
    """

    type: ClassVar[str]

    user: User


class TextReplyToMessage(Interaction, kw_only=True, tag_field="type", tag="text_reply_to_message"):
    """A user has replied to a message with text (stripped of surrounding whitespace)."""

    message_id: str
    user_message_id: str
    text: Annotated[str, Meta(min_length=1)]
    lang: str | None = None  # BCP 47

    def __post_init__(self) -> None:
        text = self.text.strip()
        if not text:
            raise ValueError("`text` must not be empty or whitespace only")
        self.text = text


class MessageRating(Interaction, kw_only=True, tag_field="type", tag="message_rating"):
    """A user has rated a message."""

    message_id: str
    rating: Annotated[int, Meta(gt=0)]

    def __post_init__(self) -> None:
        if self.rating <= 0:
            raise ValueError(f"`rating` must be > 0, got {self.rating!r}")


class MessageRanking(Interaction, kw_only=True, tag_field="type", tag="message_ranking"):
    """A user has given a ranking for a message."""

    message_id: str  # parent message of replies that were ranked
    ranking: Annotated[list[int], Meta(min_length=1)]  # indices of the replies, best first
    not_rankable: bool | None = None  # all options flawed, factually invalid or unacceptable

    def __post_init__(self) -> None:
        if not self.ranking:
            raise ValueError("`ranking` must have at least 1 item")


class LabelWidget(str, enum.Enum):
    """How a frontend presents a label: a yes/no question, a flag, or a Likert scale."""

    __get_pydantic_json_schema__ = schema_without_docstring

    yes_no = "yes_no"
    flag = "flag"
    likert = "likert"


class TextLabel(str, enum.Enum):
    """A label for a piece of text, with how frontends should present it."""

    __get_pydantic_json_schema__ = schema_without_docstring

    widget: LabelWidget
    display_text: str
    help_text: str | None

    def __new__(
        cls, label: str, widget: LabelWidget, display_text: str = "", help_text: str | None = None
    ) -> TextLabel:
        obj = str.__new__(cls, label)
        obj._value_ = label
        obj.widget = widget
        obj.display_text = display_text
        obj.help_text = help_text
        return obj

    spam = "spam", LabelWidget.yes_no, "Seems to be intentionally low-quality or irrelevant"
    fails_task = "fails_task", LabelWidget.yes_no, "Fails to follow the correct instruction / task"
    lang_mismatch = (
        "lang_mismatch",
        LabelWidget.flag,
        "Wrong Language",
        "The message is written in a language that differs from the currently selected language.",
    )
    pii = "pii", LabelWidget.flag, "Contains personal identifiable information (PII)"
    not_appropriate = "not_appropriate", LabelWidget.flag, "Inappropriate"
    hate_speech = (
        "hate_speech",
        LabelWidget.flag,
        "Content is abusive or threatening and expresses prejudice against a protected characteristic",
        "Prejudice refers to preconceived views not based on reason. Protected characteristics "
        "include gender, ethnicity, religion, sexual orientation, and similar characteristics.",
    )
    sexual_content = "sexual_content", LabelWidget.flag, "Contains sexual content"
    moral_judgement = "moral_judgement", LabelWidget.flag, "Expresses moral judgement"
    political_content = "political_content", LabelWidget.flag, "Expresses political views"
    quality = "quality", LabelWidget.likert, "Overall subjective quality rating of the message"
    toxicity = "toxicity", LabelWidget.likert, "Rude, abusive, profane or insulting content"
    humor = "humor", LabelWidget.likert, "Humorous content including sarcasm"
    helpfulness = "helpfulness", LabelWidget.likert, "Helpfulness of the message"
    creativity = "creativity", LabelWidget.likert, "Creativity"
    violence = "violence", LabelWidget.likert, "Violence/abuse/terrorism/self-harm"


_TEXT_LABELS: dict[str, TextLabel] = {label.value: label for label in TextLabel}

LabelValue = Annotated[float, Meta(ge=0.0, le=1.0)]


class TextLabels(Interaction, kw_only=True, tag_field="type", tag="text_labels"):
    """A set of labels for a piece of text, each value within [0, 1]."""

    text: str
    labels: dict[TextLabel, LabelValue]
    message_id: UUID
    task_id: UUID | None = None
    is_report: bool | None = None

    def __post_init__(self) -> None:
        labels: dict[TextLabel, float] = {}
        for key, value in self.labels.items():
            label = _TEXT_LABELS.get(key)
            if label is None:
                raise ValueError(f"`labels` has an unknown label {key!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`labels[{key!r}]` must be within [0, 1], got {value!r}")
            labels[label] = value
        self.labels = labels

    @property
    def has_message_id(self) -> bool:
        return self.message_id is not None


AnyInteraction = Union[TextReplyToMessage, MessageRating, MessageRanking, TextLabels]
"""Any concrete interaction, chosen by its ``type`` tag when decoded."""


# ------------------------------------------------------------------------------------- stats


class SystemStats(OasstStruct, kw_only=True):
    """The backend's message counts (``GET /api/v1/stats/``): all, active (also per
    language), deleted, and the number of message trees.
    """

    all: int = 0
    active: int = 0
    active_by_lang: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    message_trees: int = 0


class UserScore(OasstStruct, kw_only=True, gc=False):
    """One user's scores and activity counts over a time frame: a row of
    ``LeaderboardStats``, and what the backend's per-user stats endpoints
    (``GET /api/v1/users/{user_id}/stats/...``) return.
    """

    rank: int | None = None
    user_id: UUID
    highlighted: bool = False
    username: str
    auth_method: str
    display_name: str

    leader_score: int = 0
    level: int = 0  # between 0 and 100

    base_date: datetime | None = None
    modified_date: datetime | None = None

    prompts: int = 0
    replies_assistant: int = 0
    replies_prompter: int = 0
    labels_simple: int = 0
    labels_full: int = 0
    rankings_total: int = 0
    rankings_good: int = 0

    accepted_prompts: int = 0
    accepted_replies_assistant: int = 0
    accepted_replies_prompter: int = 0

    reply_ranked_1: int = 0
    reply_ranked_2: int = 0
    reply_ranked_3: int = 0

    # only used for time span "total"
    streak_last_day_date: datetime | None = None
    streak_days: int | None = None
    last_activity_date: datetime | None = None


class LeaderboardStats(OasstStruct, kw_only=True):
    """The leaderboard of a ``time_frame`` (``GET /api/v1/leaderboards/{time_frame}``): one
    ``UserScore`` per user, and when it was last updated.
    """

    time_frame: str
    last_updated: datetime
    leaderboard: list[UserScore]


class TrollScore(OasstStruct, kw_only=True, gc=False):
    """One user's row of ``TrollboardStats``: ``troll_score``, the reports and votes their
    messages received and the labels given to them (the key ``lang_mismach`` is spelled as the
    backend sends it).
    """

    rank: int | None = None
    user_id: UUID
    highlighted: bool = False
    username: str
    auth_method: str
    display_name: str
    last_activity_date: datetime | None = None
    enabled: bool
    deleted: bool
    show_on_leaderboard: bool

    troll_score: int = 0

    base_date: datetime | None = None
    modified_date: datetime | None = None

    red_flags: int = 0  # num reported messages of user
    upvotes: int = 0  # num up-voted messages of user
    downvotes: int = 0  # num down-voted messages of user

    spam_prompts: int = 0

    quality: float | None = None
    humor: float | None = None
    toxicity: float | None = None
    violence: float | None = None
    helpfulness: float | None = None

    spam: int = 0
    lang_mismach: int = 0  # sic: the wire key as the backend spells it
    not_appropriate: int = 0
    pii: int = 0
    hate_speech: int = 0
    sexual_content: int = 0
    political_content: int = 0


class TrollboardStats(OasstStruct, kw_only=True):
    """The trollboard of a ``time_frame`` (``GET /api/v1/trollboards/{time_frame}``): one
    ``TrollScore`` per user.
    """

    time_frame: str
    last_updated: datetime
    trollboard: list[TrollScore]


class OasstErrorResponse(OasstStruct, kw_only=True, gc=False):
    """The body of every error answer of the backend."""

    error_code: OasstErrorCode
    message: str


# ------------------------------------------------------------------------------------- emoji


class EmojiCode(str, enum.Enum):
    """The emoji a user can put on a message (``MessageEmojiRequest.emoji``). The ``skip_*``
    codes are the task system's own: they record skipped tasks.
    """

    __get_pydantic_json_schema__ = schema_without_docstring

    thumbs_up = "+1"  # 👍
    thumbs_down = "-1"  # 👎
    red_flag = "red_flag"  # 🚩
    hundred = "100"  # 💯
    rofl = "rofl"  # 🤣
    clap = "clap"  # 👏
    diamond = "diamond"  # 💎
    heart_eyes = "heart_eyes"  # 😍
    disappointed = "disappointed"  # 😞
    poop = "poop"  # 💩
    skull = "skull"  # 💀

    # skip task system uses special emoji codes
    skip_reply = "_skip_reply"
    skip_ranking = "_skip_ranking"
    skip_labeling = "_skip_labeling"


class EmojiOp(str, enum.Enum):
    """What a ``MessageEmojiRequest`` does with its emoji: toggle (the default), add or remove.
    The member for ``"toggle"`` is named ``togggle``, as in the reference.
    """

    __get_pydantic_json_schema__ = schema_without_docstring

    togggle = "toggle"  # sic: the reference's member name
    add = "add"
    remove = "remove"


class MessageEmojiRequest(OasstStruct, kw_only=True):
    """A frontend puts an emoji on a message for ``user``, or takes it off (``op``): the
    body of the backend's ``POST /api/v1/messages/{message_id}/emoji``.
    """

    user: User
    op: EmojiOp = EmojiOp.togggle
    emoji: EmojiCode


class MessageEditRequest(OasstStruct, kw_only=True):
    """A frontend asks the backend to edit a message for ``user``: ``new_content`` is the
    new text.
    """

    user: User
    new_content: str


class CreateFrontendUserRequest(User, kw_only=True, gc=False):
    """A frontend creates a user in the backend (the body of ``POST /api/v1/frontend_users/``):
    the ``User`` identity plus ``show_on_leaderboard``, ``enabled``, ``tos_acceptance`` and ``notes``.
    """

    show_on_leaderboard: bool = True
    enabled: bool = True
    tos_acceptance: bool | None = None
    notes: str | None = None


# ------------------------------------------------------------------------------- cached stats


class CachedStatsName(str, enum.Enum):
    """The names of the statistics the backend caches (``CachedStatsResponse.name``)."""

    __get_pydantic_json_schema__ = schema_without_docstring

    human_messages_by_lang = "human_messages_by_lang"
    human_messages_by_role = "human_messages_by_role"
    message_trees_by_state = "message_trees_by_state"
    message_trees_states_by_lang = "message_trees_states_by_lang"
    users_accepted_tos = "users_accepted_tos"


def _stats_name(name: str) -> CachedStatsName | str:
    """A known cached-stats name as its enum member, any other name as the plain string."""
    try:
        return CachedStatsName(name)
    except ValueError:
        return name


class CachedStatsResponse(OasstStruct, kw_only=True):
    """Cached statistics by name; ``name`` is a ``CachedStatsName`` when known, else a string."""

    name: str
    last_updated: datetime
    stats: dict[str, Any] | list[Any]

    def __post_init__(self) -> None:
        # msgspec cannot type a field as ``CachedStatsName | str`` (two string kinds): decode a
        # string and upgrade known names to the enum, as the reference's union did.
        self.name = _stats_name(self.name)


class AllCachedStatsResponse(OasstStruct, kw_only=True):
    """Every statistic the backend caches, by name (``GET /api/v1/stats/cached``); a known
    name is a ``CachedStatsName`` member, any other a plain string.
    """

    stats_by_name: dict[str, CachedStatsResponse]

    def __post_init__(self) -> None:
        self.stats_by_name = {_stats_name(k): v for k, v in self.stats_by_name.items()}


__all__ = [
    "Account",
    "AllCachedStatsResponse",
    "AnyInteraction",
    "AnyTask",
    "AssistantReplyTask",
    "AuthMethod",
    "CachedStatsName",
    "CachedStatsResponse",
    "Conversation",
    "ConversationMessage",
    "CreateFrontendUserRequest",
    "EmojiCode",
    "EmojiOp",
    "FrontEndUser",
    "FrontEndUserPage",
    "InitialPromptTask",
    "Interaction",
    "LabelAssistantReplyTask",
    "LabelConversationReplyTask",
    "LabelDescription",
    "LabelInitialPromptTask",
    "LabelPrompterReplyTask",
    "LabelTaskDisposition",
    "LabelTaskMode",
    "LabelWidget",
    "LeaderboardStats",
    "Message",
    "MessageEditRequest",
    "MessageEmojiRequest",
    "MessagePage",
    "MessageRanking",
    "MessageRating",
    "MessageRevision",
    "MessageTree",
    "OasstErrorResponse",
    "PageResult",
    "PrompterReplyTask",
    "RankAssistantRepliesTask",
    "RankConversationRepliesTask",
    "RankInitialPromptsTask",
    "RankPrompterRepliesTask",
    "RateSummaryTask",
    "RatingScale",
    "ReplyToConversationTask",
    "SummarizeStoryTask",
    "SystemStats",
    "Task",
    "TaskAck",
    "TaskClose",
    "TaskDone",
    "TaskNAck",
    "TaskRequest",
    "TaskRequestType",
    "TextLabel",
    "TextLabels",
    "TextReplyToMessage",
    "Token",
    "TokenPair",
    "TrollScore",
    "TrollboardStats",
    "User",
    "UserScore",
    "WithHintMixin",
]
