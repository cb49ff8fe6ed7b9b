"""The inference worker protocol: requests the server sends, responses workers send back.

Every model of the reference's ``oasst_shared.schemas.inference`` as a msgspec Struct with the
same name, fields, defaults and wire format. ``WorkerRequest`` is tagged on ``request_type``,
``WorkerResponse`` on ``response_type``; ``msgspec.json.decode(data, type=WorkerResponse)``
picks the member in one pass and ``response.response_type`` reads the tag.

Decoding never reads the local machine: a received ``WorkerHardwareInfo`` or
``WorkerMetricsInfo`` is exactly what the sender sent. Collecting this machine's figures is
the explicit ``WorkerHardwareInfo.collect()`` / ``WorkerMetricsInfo.collect()``
(``oasst_shared.hardware``), which this module imports only when called.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Union
from uuid import uuid4

from msgspec import Meta, field

from oasst_shared._schema_docs import schema_without_docstring
from oasst_shared.model_configs import ModelConfig
from oasst_shared.schemas.base import OasstStruct
from oasst_shared.utils import utcnow

INFERENCE_PROTOCOL_VERSION = "1"

# Largest seed the reference draws (2**64 - 2).
MAX_SEED = 0xFFFF_FFFF_FFFF_FFFE


def make_seed() -> int:
    """A random sampling seed in [0, 2**64 - 2]."""
    import random  # imported on first use: keeps the schema import cheap

    return random.randint(0, MAX_SEED)


# ------------------------------------------------------------------------- workers and metrics


class WorkerGpuInfo(OasstStruct, kw_only=True, gc=False):
    """One GPU of a worker's machine, in ``WorkerHardwareInfo.gpus``: its name and total memory."""

    name: str
    total_memory: int


class WorkerHardwareInfo(OasstStruct, kw_only=True):
    """A worker's machine. Built from what was received; ``collect()`` reads this machine."""

    uname_sysname: str
    uname_release: str
    uname_version: str
    uname_machine: str
    uname_processor: str
    cpu_count_physical: int
    cpu_count_logical: int
    cpu_freq_max: float
    cpu_freq_min: float
    mem_total: int
    swap_total: int
    nvidia_driver_version: str | None = None
    gpus: list[WorkerGpuInfo]

    @classmethod
    def collect(cls) -> WorkerHardwareInfo:
        """This machine's hardware (see ``oasst_shared.hardware.collect_hardware_info``)."""
        from oasst_shared.hardware import collect_hardware_info

        return collect_hardware_info()


class WorkerConfig(OasstStruct, kw_only=True):
    """What a worker serves, in its ``WorkerInfo``: the model (wire key ``model_config``) and
    how many requests it handles at once. ``compat_hash`` names the work queue it takes work from.
    """

    model_config: ModelConfig
    max_parallel_requests: int = 1

    @property
    def compat_hash(self) -> str:
        return self.model_config.compat_hash


class WorkerInfo(OasstStruct, kw_only=True):
    """The first frame a worker sends after connecting."""

    config: WorkerConfig
    hardware_info: WorkerHardwareInfo


class GpuMetricsInfo(OasstStruct, kw_only=True, gc=False):
    """One GPU's load, in ``WorkerMetricsInfo.gpus``: compute and memory usage."""

    gpu_usage: float
    mem_usage: float


class WorkerMetricsInfo(OasstStruct, kw_only=True):
    """A worker's load. Built from what was received; ``collect()`` reads this machine."""

    created_at: datetime
    cpu_usage: float
    mem_usage: float
    swap_usage: float
    gpus: list[GpuMetricsInfo] | None = None

    @classmethod
    def collect(cls) -> WorkerMetricsInfo:
        """This machine's load (see ``oasst_shared.hardware.collect_metrics_info``)."""
        from oasst_shared.hardware import collect_metrics_info

        return collect_metrics_info()


# ---------------------------------------------------------------------------------- sampling


class SamplingParameters(OasstStruct, kw_only=True, gc=False):
    """How a worker samples, in ``WorkParameters``: top-k, top-p, typical-p, temperature and
    repetition penalty (None when not set), and at most ``max_new_tokens`` new tokens (1024 by default).
    """

    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int = 1024


# ----------------------------------------------------------------------------------- plugins


class PluginApiType(OasstStruct, kw_only=True, gc=False):
    """The ``api`` part of a plugin's manifest: the kind of API (``type``) and its ``url``."""

    type: str
    url: str
    has_user_authentication: bool | None = False
    # NOTE: is_user_authenticated is not defined by the plugin spec
    is_user_authenticated: bool | None = False


class PluginAuthType(OasstStruct, kw_only=True, gc=False):
    """The ``auth`` part of a plugin's manifest: how the plugin authenticates (``type``)."""

    type: str


class PluginOpenAPIParameter(OasstStruct, kw_only=True):
    """One parameter of a plugin endpoint. The wire keys ``in_`` and ``schema_`` are spelled
    as the reference spells them.
    """

    name: str
    in_: str  # wire key as the reference spells it
    description: str
    required: bool
    schema_: Any = None  # wire key as the reference spells it


class PluginOpenAPIEndpoint(OasstStruct, kw_only=True):
    """One operation of a plugin's API: its ``path``, HTTP method (``type``), ``summary``,
    ``operation_id``, full ``url``, parameters and optional payload.
    """

    path: str
    type: str
    summary: str
    operation_id: str
    url: str
    params: list[PluginOpenAPIParameter]
    payload: dict[str, Any] | None = None


class PluginConfig(OasstStruct, kw_only=True):
    """A plugin's manifest: its names and descriptions for people and for the model, its
    ``api`` and ``auth``, and the ``endpoints`` of its API.
    """

    schema_version: str
    name_for_model: str
    name_for_human: str
    description_for_human: str
    description_for_model: str
    api: PluginApiType
    auth: PluginAuthType
    logo_url: str | None = None
    contact_email: str | None = None
    legal_info_url: str | None = None
    endpoints: list[PluginOpenAPIEndpoint] | None = None


class PluginEntry(OasstStruct, kw_only=True):
    """A plugin a chat may use, in ``WorkParameters.plugins``: the plugin's ``url``, whether it
    is ``enabled`` and its manifest (``plugin_config``). The server sets ``trusted`` for its own plugins.
    """

    url: str
    enabled: bool = True
    plugin_config: PluginConfig | None = None
    # NOTE: trusted is not a field of the plugin spec; set by the server for its own plugins
    trusted: bool | None = False


class PluginExecutionDetails(OasstStruct, kw_only=True):
    """How a plugin run went, in ``PluginUsed``: the model's inner monologue, the tool's final
    output, the final prompt, the depth reached, and ``status`` with ``error_message`` on failure.
    """

    inner_monologue: list[str]
    final_tool_output: str
    final_prompt: str
    final_generation_assisted: bool
    achieved_depth: int | None = None
    error_message: str | None = None
    status: Literal["success", "failure"]


class PluginUsed(OasstStruct, kw_only=True):
    """The plugin a generated reply used (``GeneratedTextResponse.used_plugin``,
    ``MessageRead.used_plugin``) and how its run went.
    """

    name: str | None = None
    url: str | None = None
    trusted: bool | None = None
    execution_details: PluginExecutionDetails


class WorkParameters(OasstStruct, kw_only=True):
    """How to generate: the model, sampling, seed, prompts and plugins."""

    model_config: ModelConfig
    sampling_parameters: SamplingParameters = field(default_factory=SamplingParameters)
    do_sample: bool = True
    seed: int = field(default_factory=make_seed)
    system_prompt: str | None = None
    user_profile: str | None = None
    user_response_instructions: str | None = None
    plugins: list[PluginEntry] = field(default_factory=list)
    plugin_max_depth: int = 4


# ----------------------------------------------------------------------------------- threads


class ReportType(str, enum.Enum):
    """Why a chat message was reported (``Report.report_type``). The member for ``"feedback"``
    is named ``feeback``, as in the reference.
    """

    __get_pydantic_json_schema__ = schema_without_docstring

    spam = "spam"
    offensive = "offensive"
    feeback = "feedback"  # sic: the reference's member name


class Vote(OasstStruct, kw_only=True, gc=False):
    """A vote on a chat message, with its ``score``."""

    id: str
    score: int


class Report(OasstStruct, kw_only=True, gc=False):
    """A report on a chat message, in ``MessageRead.reports``: its ``report_type`` and ``reason``."""

    id: str
    report_type: ReportType
    reason: str


class MessageState(str, enum.Enum):
    """Where a chat message stands on the inference server (``MessageRead.state``): e.g.
    ``pending``, ``in_progress``, ``complete``, or how it ended early.
    """

    __get_pydantic_json_schema__ = schema_without_docstring

    manual = "manual"
    pending = "pending"
    in_progress = "in_progress"
    complete = "complete"
    aborted_by_worker = "aborted_by_worker"
    cancelled = "cancelled"
    timeout = "timeout"


class MessageRead(OasstStruct, kw_only=True):
    """A chat message as the inference server stores and sends it."""

    id: str
    parent_id: str | None = None
    content: str | None = None
    chat_id: str
    created_at: datetime
    role: Literal["prompter", "assistant"]
    state: MessageState
    score: int
    reports: list[Report] = field(default_factory=list)
    work_parameters: WorkParameters | None = None
    safe_content: str | None = None
    safety_level: int | None = None
    safety_label: str | None = None
    safety_rots: str | None = None
    used_plugin: PluginUsed | None = None

    @property
    def is_assistant(self) -> bool:
        return self.role == "assistant"


class Thread(OasstStruct, kw_only=True):
    """The chat a worker is to continue, sent in ``WorkRequest.thread``: its messages."""

    messages: list[MessageRead]


# ------------------------------------------------------------------------------------ safety

SafetyLevel = Annotated[int, Meta(ge=0, le=9)]


class SafetyParameters(OasstStruct, kw_only=True, gc=False):
    """How strictly a prompt is checked for safety (``WorkRequest.safety_parameters``):
    ``level`` within [0, 9], 0 by default.
    """

    level: SafetyLevel = 0

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 9:
            raise ValueError(f"`level` must be within [0, 9], got {self.level!r}")


class SafetyRequest(OasstStruct, kw_only=True):
    """A text to check for safety (``inputs``) with the ``parameters`` to check it with;
    answered by a ``SafetyResponse``.
    """

    inputs: str
    parameters: SafetyParameters


class SafetyResponse(OasstStruct, kw_only=True, gc=False):
    """The answer to a ``SafetyRequest``: the safety model's output text (``outputs``)."""

    outputs: str


# ---------------------------------------------------------------------- requests to workers


def new_request_id() -> str:
    """A new ``WorkerRequestBase.id``: a random UUID, as text."""
    return str(uuid4())


class WorkerRequestBase(OasstStruct, kw_only=True):
    """Base of what the server sends to a worker; tagged on ``request_type`` in subclasses."""

    request_type: ClassVar[str]

    id: str = field(default_factory=new_request_id)


class WorkRequest(WorkerRequestBase, kw_only=True, tag_field="request_type", tag="work"):
    """Generate a reply to ``thread`` with ``parameters``.

    ``parameters`` is required: the reference declares a default ``WorkParameters()``, which
    can never be built (its ``model_config`` is required), so it was required in practice.
    """

    thread: Thread
    created_at: datetime = field(default_factory=utcnow)
    parameters: WorkParameters
    safety_parameters: SafetyParameters = field(default_factory=SafetyParameters)


class PingRequest(WorkerRequestBase, kw_only=True, gc=False, tag_field="request_type", tag="ping"):
    """The server checks that a worker is alive; the worker answers with a ``PongResponse``.
    Tag: ``request_type="ping"``.
    """


class ErrorRequest(WorkerRequestBase, kw_only=True, gc=False, tag_field="request_type", tag="error"):
    """The server tells a worker about an ``error``. Tag: ``request_type="error"``."""

    error: str


class UpgradeProtocolRequest(
    WorkerRequestBase, kw_only=True, gc=False, tag_field="request_type", tag="upgrade_protocol"
):
    """The server tells a worker that its protocol version (header ``X-Protocol-Version``)
    is not the server's, so the worker must upgrade. Tag: ``request_type="upgrade_protocol"``.
    """


class WrongApiKeyRequest(
    WorkerRequestBase, kw_only=True, gc=False, tag_field="request_type", tag="wrong_api_key"
):
    """The server tells a worker that its API key (header ``X-API-Key``) was refused.
    Tag: ``request_type="wrong_api_key"``.
    """


class TerminateRequest(WorkerRequestBase, kw_only=True, gc=False, tag_field="request_type", tag="terminate"):
    """The server tells a worker to stop. Tag: ``request_type="terminate"``."""


# ------------------------------------------------------------------- responses from workers


class WorkerResponseBase(OasstStruct, kw_only=True):
    """Base of what a worker sends; tagged on ``response_type`` in subclasses."""

    response_type: ClassVar[str]

    request_id: str | None = None


class PongResponse(WorkerResponseBase, kw_only=True, tag_field="response_type", tag="pong"):
    """A worker's answer to a ``PingRequest`` (``request_id`` is the ping's ``id``), with its
    current ``metrics``. Tag: ``response_type="pong"``.
    """

    metrics: WorkerMetricsInfo | None = None


class SafePromptResponse(WorkerResponseBase, kw_only=True, tag_field="response_type", tag="safe_prompt"):
    """A worker reports the prompt of a ``WorkRequest`` after its safety check: ``safe_prompt``,
    the parameters used, the safety label and rules of thumb (``safety_rots``).
    Tag: ``response_type="safe_prompt"``.
    """

    safe_prompt: str
    safety_parameters: SafetyParameters
    safety_label: str
    safety_rots: str


class PluginIntermediateResponse(
    WorkerResponseBase, kw_only=True, gc=False, tag_field="response_type", tag="plugin_intermediate"
):
    """A worker reports a step of a plugin run while it generates: the plugin's current
    thought, the action taken, its input and its response. Tag: ``response_type="plugin_intermediate"``.
    """

    text: str = ""
    current_plugin_thought: str
    current_plugin_action_taken: str
    current_plugin_action_input: str
    current_plugin_action_response: str


class TokenResponse(WorkerResponseBase, kw_only=True, gc=False, tag_field="response_type", tag="token"):
    """One generated token: the hottest message of the stack."""

    text: str
    log_prob: float | None = None
    token_id: int


class GeneratedTextResponse(
    WorkerResponseBase, kw_only=True, tag_field="response_type", tag="generated_text"
):
    """A worker's final answer to a ``WorkRequest`` (``request_id`` is its ``id``): the whole
    ``text``, why generation stopped, its metrics and any plugin used.
    Tag: ``response_type="generated_text"``.
    """

    text: str
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    metrics: WorkerMetricsInfo | None = None
    used_plugin: PluginUsed | None = None


class InternalFinishedMessageResponse(
    WorkerResponseBase, kw_only=True, tag_field="response_type", tag="internal_finished_message"
):
    """Sent within the inference server (through Redis to the chat's event stream), never by a
    worker: the stored ``message`` once the worker's ``GeneratedTextResponse`` arrived.
    Tag: ``response_type="internal_finished_message"``.
    """

    message: MessageRead


class InternalErrorResponse(
    WorkerResponseBase, kw_only=True, tag_field="response_type", tag="internal_error"
):
    """Sent within the inference server (through Redis to the chat's event stream), never by a
    worker: generating ``message`` failed with ``error``. Tag: ``response_type="internal_error"``.
    """

    error: str
    message: MessageRead


class ErrorResponse(WorkerResponseBase, kw_only=True, tag_field="response_type", tag="error"):
    """A worker reports that a ``WorkRequest`` (``request_id`` is its ``id``) failed with
    ``error``, with its metrics. Tag: ``response_type="error"``.
    """

    metrics: WorkerMetricsInfo | None = None
    error: str


class GeneralErrorResponse(WorkerResponseBase, kw_only=True, tag_field="response_type", tag="general_error"):
    """A worker reports an ``error`` with its metrics. Tag: ``response_type="general_error"``.
    Part of ``WorkerResponse`` here; the reference defined it but left it out of its union.
    """

    metrics: WorkerMetricsInfo | None = None
    error: str


WorkerRequest = Union[
    WorkRequest,
    PingRequest,
    ErrorRequest,
    TerminateRequest,
    UpgradeProtocolRequest,
    WrongApiKeyRequest,
]
"""Any message the server sends to a worker, chosen by its ``request_type`` tag."""

WorkerResponse = Union[
    TokenResponse,
    GeneratedTextResponse,
    ErrorResponse,
    PongResponse,
    InternalFinishedMessageResponse,
    InternalErrorResponse,
    SafePromptResponse,
    PluginIntermediateResponse,
    GeneralErrorResponse,
]
"""Any message a worker sends, chosen by its ``response_type`` tag.

Includes ``GeneralErrorResponse``, which the reference defined but left out of its union.
"""

__all__ = [
    "INFERENCE_PROTOCOL_VERSION",
    "MAX_SEED",
    "ErrorRequest",
    "ErrorResponse",
    "GeneralErrorResponse",
    "GeneratedTextResponse",
    "GpuMetricsInfo",
    "InternalErrorResponse",
    "InternalFinishedMessageResponse",
    "MessageRead",
    "MessageState",
    "PingRequest",
    "PluginApiType",
    "PluginAuthType",
    "PluginConfig",
    "PluginEntry",
    "PluginExecutionDetails",
    "PluginIntermediateResponse",
    "PluginOpenAPIEndpoint",
    "PluginOpenAPIParameter",
    "PluginUsed",
    "PongResponse",
    "Report",
    "ReportType",
    "SafePromptResponse",
    "SafetyParameters",
    "SafetyRequest",
    "SafetyResponse",
    "SamplingParameters",
    "TerminateRequest",
    "Thread",
    "TokenResponse",
    "UpgradeProtocolRequest",
    "Vote",
    "WorkParameters",
    "WorkRequest",
    "WorkerConfig",
    "WorkerGpuInfo",
    "WorkerHardwareInfo",
    "WorkerInfo",
    "WorkerMetricsInfo",
    "WorkerRequest",
    "WorkerRequestBase",
    "WorkerResponse",
    "WorkerResponseBase",
    "WrongApiKeyRequest",
    "make_seed",
]
