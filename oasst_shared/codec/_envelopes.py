"""Relay envelopes: view structs holding only a frame's tag and its request id.

A relay decodes a frame into an envelope (``codec.peek_worker_response``) to route it, then
forwards the original bytes unchanged. The envelopes are plain structs, independent of the
wire format (``JsonCodec`` and ``MsgpackCodec`` decode them alike); the prebuilt codecs for
them are made in ``oasst_shared.codec`` beside the others.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Union

from oasst_shared.schemas import inference
from oasst_shared.schemas.base import OasstStruct

__all__ = [
    "WorkerRequestEnvelope",
    "WorkerRequestEnvelopes",
    "WorkerResponseEnvelope",
    "WorkerResponseEnvelopes",
]


class WorkerResponseEnvelope(OasstStruct, kw_only=True, gc=False):
    """The routing part of a worker frame: its tag (``response_type``) and ``request_id``.

    One tagged subclass per ``WorkerResponse`` member, derived from the union itself, so the
    peek accepts exactly the tags (and repeated-tag frames) the full decode accepts.
    """

    response_type: ClassVar[str]

    request_id: str | None = None


class WorkerRequestEnvelope(OasstStruct, kw_only=True, gc=False):
    """The routing part of a server frame: its tag (``request_type``) and ``id``."""

    request_type: ClassVar[str]

    id: str | None = None


def envelope_union(union: Any, base: type[OasstStruct]) -> Any:
    """A tagged union of ``base`` subclasses, one per member of ``union`` with its tag."""
    members = []
    for member in typing.get_args(union):
        config = member.__struct_config__
        name = f"{member.__name__}Envelope"
        # Built through the base's metaclass (as a class statement would), which exposes the tag.
        metaclass: Any = type(base)
        envelope = metaclass(
            name,
            (base,),
            {"__module__": __name__, "__qualname__": name},
            kw_only=True,
            gc=False,
            tag_field=config.tag_field,
            tag=config.tag,
        )
        members.append(envelope)
    return Union[tuple(members)]


WorkerResponseEnvelopes = envelope_union(inference.WorkerResponse, WorkerResponseEnvelope)
"""The tagged union of ``WorkerResponseEnvelope`` subclasses, one per ``WorkerResponse`` member."""
WorkerRequestEnvelopes = envelope_union(inference.WorkerRequest, WorkerRequestEnvelope)
"""The tagged union of ``WorkerRequestEnvelope`` subclasses, one per ``WorkerRequest`` member."""
