"""The public exception classes of ``oasst_shared.api_client`` and ``oasst_shared.relay`` name the
package they are imported from (``__module__``: tracebacks, reprs, pickles), not the private
module that defines them, and every one of them pickles with its attributes.

``EXAMPLES`` makes one instance of each; a new public exception class must be added there. The
relay's errors need the ``redis`` extra (so does ``import oasst_shared.relay``).
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from http import HTTPStatus
from types import ModuleType
from typing import Any

import httpx
import pytest

from oasst_shared import api_client, relay
from oasst_shared.exceptions import OasstErrorCode

_REQUEST = httpx.Request("POST", "http://backend.example/api/v1/tasks/", headers={"X-API-Key": "secret"})

EXAMPLES: dict[str, Callable[[], BaseException]] = {
    "OasstApiError": lambda: api_client.OasstApiError("bad", method="GET", path="/x"),
    "OasstApiStatusError": lambda: api_client.OasstApiStatusError(
        "teapot", http_status_code=HTTPStatus.IM_A_TEAPOT, status_code=418, backend_error_code=7
    ),
    "OasstApiAuthError": lambda: api_client.OasstApiAuthError(
        "bad key", OasstErrorCode.API_CLIENT_NOT_AUTHORIZED, request=_REQUEST
    ),
    "OasstApiNotFoundError": lambda: api_client.OasstApiNotFoundError("gone", status_code=404),
    "OasstApiValidationError": lambda: api_client.OasstApiValidationError("shape", body_excerpt="'{}'"),
    "OasstApiRateLimitError": lambda: api_client.OasstApiRateLimitError("slow down", status_code=429),
    "OasstApiServerError": lambda: api_client.OasstApiServerError("boom", status_code=502),
    "OasstApiResponseError": lambda: api_client.OasstApiResponseError("not json", request=_REQUEST),
    "OasstApiConnectionError": lambda: api_client.OasstApiConnectionError(
        "could not connect", request=_REQUEST, request_sent=False
    ),
    "OasstApiTimeoutError": lambda: api_client.OasstApiTimeoutError("late", method="GET", path="/y"),
    "RelayError": lambda: relay.RelayError("failed", key="message:m", operation="stream (LPOP)"),
    "QueueFullError": lambda: relay.QueueFullError("full", key="work:h", operation="enqueue", max_size=2),
    "RelayConnectionError": lambda: relay.RelayConnectionError("refused", key=None, operation="publish"),
    "RelayPublishError": lambda: relay.RelayPublishError(
        "lost reply", key="message:x", operation="publish (EVALSHA)", frames=3
    ),
    "RelayDecodeError": lambda: relay.RelayDecodeError(
        "not a frame", key="message:y", operation="stream", frame=b"{"
    ),
}
"""One instance of each public exception class, with every attribute its constructor sets."""

_NEWER_RELAY_ERRORS: dict[str, Callable[[], BaseException]] = {
    "RelayUnsupportedServerError": lambda: _relay_error(
        "RelayUnsupportedServerError", "a cluster node", key=None, operation="connect"
    ),
    "RelayResponseError": lambda: _relay_error(
        "RelayResponseError", "refused", key="message:z", operation="publish", reply="WRONGTYPE Operation"
    ),
    "RelayOutOfMemoryError": lambda: _relay_error(
        "RelayOutOfMemoryError", "full", key="message:z", operation="publish", reply="OOM command not allowed"
    ),
    "RelayFrameError": lambda: _relay_error(
        "RelayFrameError", "too large", key="message:z", operation="send", size=9
    ),
    "RelayTimeoutError": lambda: _relay_error(
        "RelayTimeoutError", "no frame", key="message:z", operation="stream", waited=60.0
    ),
    "RelayStalledError": lambda: _relay_error(
        "RelayStalledError", "stalled", key="message:z", operation="stream", waited=60.0, stalled=12.5
    ),
    "RelayDataLossError": lambda: _relay_error(
        "RelayDataLossError", "restarted", key="message:z", operation="stream"
    ),
}
"""The relay's error classes added while its failure handling is being reworked (built by name, so
that this module imports while they land)."""


def _relay_error(name: str, message: str, **kwargs: Any) -> BaseException:
    cls = getattr(relay, name)
    error: BaseException = cls(message, **kwargs)
    return error


EXAMPLES.update({name: make for name, make in _NEWER_RELAY_ERRORS.items() if hasattr(relay, name)})


def _public_exception_classes(module: ModuleType) -> list[type[BaseException]]:
    found = (getattr(module, name) for name in module.__all__)
    return [obj for obj in found if isinstance(obj, type) and issubclass(obj, BaseException)]


_PACKAGES = [api_client, relay]
_CLASSES = [
    pytest.param(cls, package.__name__, id=cls.__name__)
    for package in _PACKAGES
    for cls in _public_exception_classes(package)
    if cls.__module__.startswith(package.__name__ + ".") or cls.__module__ == package.__name__
]


def test_every_public_exception_class_has_an_example() -> None:
    names = {param.values[0].__name__ for param in _CLASSES}  # type: ignore[union-attr]
    assert names == set(EXAMPLES)


@pytest.mark.parametrize(("cls", "package"), _CLASSES)
def test_the_class_names_its_public_module(cls: type[BaseException], package: str) -> None:
    assert cls.__module__ == package
    assert repr(cls) == f"<class '{package}.{cls.__name__}'>"


@pytest.mark.parametrize(("cls", "package"), _CLASSES)
def test_a_traceback_names_the_public_module(cls: type[BaseException], package: str) -> None:
    error = EXAMPLES[cls.__name__]()
    last = traceback.format_exception_only(type(error), error)[-1]
    assert last.startswith(f"{package}.{cls.__name__}: ")


def _state(error: BaseException) -> tuple[Any, ...]:
    attributes = {name: value for name, value in vars(error).items() if not name.startswith("http_")}
    request = getattr(error, "http_request", None)
    return (
        type(error),
        error.args,
        str(error),
        attributes,
        None if request is None else (request.method, str(request.url), list(request.headers.items())),
    )


@pytest.mark.parametrize(("cls", "package"), _CLASSES)
def test_the_error_pickles_with_its_attributes(cls: type[BaseException], package: str) -> None:
    error = EXAMPLES[cls.__name__]()
    # pickle refers to a class by its ``__module__`` and name, and refuses to when that path
    # does not lead back to the class
    back = pickle.loads(pickle.dumps(error))
    assert _state(back) == _state(error)
