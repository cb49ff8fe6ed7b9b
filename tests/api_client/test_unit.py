"""The API client's pure parts: Retry-After parsing, backoff, retry rules, errors, body encoding."""

from __future__ import annotations

import json
import pickle
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oasst_shared.api_client import (
    IDEMPOTENT_METHODS,
    OasstApiAuthError,
    OasstApiClient,
    OasstApiConnectionError,
    OasstApiError,
    OasstApiTimeoutError,
    RetryPolicy,
    encode_body,
    parse_retry_after,
)
from oasst_shared.api_client._errors import http_status_of, status_error_class
from oasst_shared.exceptions import OasstError, OasstErrorCode
from oasst_shared.schemas import protocol

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
USER = protocol.User(id="1", display_name="One", auth_method="local")


# ------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "bad", "retry-after": "9"}, 9.0),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_http_dates() -> None:
    future = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    past = format_datetime(NOW - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after({"retry-after": future}, now=NOW) == 42.0
    assert parse_retry_after({"retry-after": past}, now=NOW) == 0.0
    assert parse_retry_after({"retry-after": "Wed, 01 May 2024 12:00:10 -0000"}, now=NOW) == 10.0
    assert parse_retry_after({"retry-after": "Wed, 99 Foo 2024 12:00:10 GMT"}, now=NOW) is None


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after({"retry-after": value}, now=NOW)
    assert result is None or result >= 0.0


# ---------------------------------------------------------------------------- backoff


@given(st.integers(min_value=0, max_value=200))
def test_backoff_within_equal_jitter_bounds(retry_index: int) -> None:
    policy = RetryPolicy(max_retries=5, initial_delay=0.5, max_delay=8.0)
    cap = min(8.0, 0.5 * 2**retry_index)
    assert cap / 2 <= policy.backoff(retry_index) <= cap


def test_backoff_grows_then_caps() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=4.0)
    for i in range(3):
        assert all(2.0**i / 2 <= policy.backoff(i) <= 2.0**i for _ in range(50))
    assert min(policy.backoff(10) for _ in range(50)) >= 2.0


def test_retry_policy_rejects_negative_settings() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(initial_delay=-0.1)


@pytest.mark.parametrize("status", [408, 429, 503])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_statuses_retried_for_every_method(method: str, status: int) -> None:
    assert RetryPolicy().retries_status(method, status)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_retried_only_when_idempotent(status: int) -> None:
    policy = RetryPolicy()
    assert policy.retries_status("GET", status)
    assert policy.retries_status("DELETE", status)
    assert not policy.retries_status("POST", status)


@pytest.mark.parametrize("status", [200, 204, 400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_never_retried(status: int) -> None:
    assert not any(RetryPolicy().retries_status(method, status) for method in ("GET", "POST", "PUT"))


def test_transport_errors_retried_when_nothing_was_sent_or_idempotent() -> None:
    assert RetryPolicy.retries_transport_error("POST", request_sent=False)
    assert not RetryPolicy.retries_transport_error("POST", request_sent=True)
    assert all(RetryPolicy.retries_transport_error(m, request_sent=True) for m in IDEMPOTENT_METHODS)


# ----------------------------------------------------------------------------- errors


def test_http_status_of_non_standard_numbers() -> None:
    assert http_status_of(418) == HTTPStatus.IM_A_TEAPOT
    assert http_status_of(299) == HTTPStatus.OK
    assert http_status_of(399) == HTTPStatus.MULTIPLE_CHOICES
    assert http_status_of(499) == HTTPStatus.BAD_REQUEST
    assert http_status_of(599) == HTTPStatus.INTERNAL_SERVER_ERROR


def test_status_error_classes() -> None:
    assert status_error_class(403) is OasstApiAuthError
    assert status_error_class(401) is OasstApiAuthError
    assert status_error_class(504).__name__ == "OasstApiServerError"
    assert status_error_class(409).__name__ == "OasstApiStatusError"


def test_errors_pickle_with_all_attributes() -> None:
    error = OasstApiTimeoutError("no answer", method="GET", path="/api/v1/stats/", request_sent=False)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OasstApiTimeoutError
    assert (copy.message, copy.error_code, copy.http_status_code) == (
        "no answer",
        OasstErrorCode.GENERIC_ERROR,
        HTTPStatus.GATEWAY_TIMEOUT,
    )
    assert (copy.method, copy.path, copy.request_sent) == ("GET", "/api/v1/stats/", False)
    assert str(copy) == str(error)


def test_error_hierarchy() -> None:
    assert issubclass(OasstApiTimeoutError, OasstApiConnectionError)
    assert issubclass(OasstApiConnectionError, OasstApiError)
    assert issubclass(OasstApiError, OasstError)
    error = OasstApiConnectionError("refused", method="POST", path="/api/v1/tasks/")
    assert error.http_status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert str(error).startswith("POST /api/v1/tasks/: refused")


# ---------------------------------------------------------------------- request bodies


def test_encode_body_leaves_out_unset_optionals() -> None:
    request = protocol.TaskRequest(type=protocol.TaskRequestType.random, user=None, lang=None)
    assert json.loads(encode_body(request)) == {"type": "random", "collective": False}
    request = protocol.TaskRequest(user=USER, lang="de")
    assert json.loads(encode_body(request)) == {
        "type": "random",
        "user": USER.dict(),
        "collective": False,
        "lang": "de",
    }


def test_encode_body_keeps_tags_nested_values_and_non_default_none() -> None:
    message_id = uuid.uuid4()
    labels = protocol.TextLabels(
        user=USER, text="t", labels={"spam": 1.0}, message_id=message_id, is_report=False
    )
    assert json.loads(encode_body(labels)) == {
        "type": "text_labels",
        "user": {"id": "1", "display_name": "One", "auth_method": "local"},
        "text": "t",
        "labels": {"spam": 1.0},
        "message_id": str(message_id),
        "is_report": False,
    }
    # A None where the default is not None is what the caller asked for: it is sent.
    emoji = protocol.MessageEmojiRequest(user=USER, emoji=protocol.EmojiCode.clap)
    assert json.loads(encode_body(emoji))["op"] == "toggle"
    nack = protocol.TaskNAck(reason=None)
    assert encode_body(nack) == b"{}"


def test_encode_body_of_plain_data_is_unchanged() -> None:
    data = {"a": None, "b": [1, {"c": None}]}
    assert json.loads(encode_body(data)) == data


# ------------------------------------------------------------------------ construction


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://host", "http://", ""])
def test_backend_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="backend_url"):
        OasstApiClient(url, "key")


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_timeout_must_be_positive_and_finite(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        OasstApiClient("http://localhost", "key", timeout=timeout)


def test_repr_hides_secrets() -> None:
    client = OasstApiClient(
        "http://localhost:8080/", "super-secret-key", oasst_user="discord:42", bearer_token="root-secret"
    )
    text = repr(client)
    assert "super-secret-key" not in text
    assert "root-secret" not in text
    assert "discord:42" not in text
    assert text.startswith("OasstApiClient(backend_url='http://localhost:8080', api_key=<hidden>")


def test_default_http_status_per_class_and_an_explicit_one_wins() -> None:
    assert OasstApiError("x").http_status_code == HTTPStatus.BAD_REQUEST
    assert OasstApiConnectionError("x").http_status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert OasstApiTimeoutError("x").http_status_code == HTTPStatus.GATEWAY_TIMEOUT
    explicit = OasstApiTimeoutError("x", OasstErrorCode.GENERIC_ERROR, HTTPStatus.REQUEST_TIMEOUT)
    assert explicit.http_status_code == HTTPStatus.REQUEST_TIMEOUT
    assert explicit.args[2] == HTTPStatus.REQUEST_TIMEOUT  # what pickling re-creates it from
