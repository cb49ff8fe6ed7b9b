from __future__ import annotations

import pickle
from http import HTTPStatus
from typing import Any

import pytest

from oasst_shared.exceptions import OasstError, OasstErrorCode, oasst_api_error


def test_every_reference_error_code_has_same_name_and_value(ref_models: Any) -> None:
    codes = ref_models["error_codes"]["OasstErrorCode"]
    assert {m.name: m.value for m in OasstErrorCode} == codes
    for name, value in codes.items():
        assert OasstErrorCode[name] == value


def test_alias_names_resolve_to_the_earlier_member(ref_models: Any) -> None:
    aliases = ref_models["error_codes"]["aliases"]
    assert aliases, "spec lists aliases"
    for name, value in aliases.items():
        member = OasstErrorCode[name]
        assert member.value == value
        assert member is OasstErrorCode(value)
        assert member.name != name  # canonical name is the first one declared
    all_names = set(OasstErrorCode.__members__)
    assert all_names == set(ref_models["error_codes"]["OasstErrorCode"]) | set(aliases)


def test_import_paths_match_the_reference() -> None:
    assert oasst_api_error.OasstError is OasstError
    assert oasst_api_error.OasstErrorCode is OasstErrorCode


def test_oasst_error_attributes_and_default_status() -> None:
    err = OasstError("nope", OasstErrorCode.MESSAGE_NOT_FOUND)
    assert err.message == "nope"
    assert err.error_code is OasstErrorCode.MESSAGE_NOT_FOUND
    assert err.http_status_code is HTTPStatus.BAD_REQUEST
    assert isinstance(err, Exception)


@pytest.mark.parametrize("status", [HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.BAD_REQUEST])
def test_oasst_error_pickles_with_all_attributes(status: HTTPStatus) -> None:
    err = OasstError("bad key", OasstErrorCode.API_CLIENT_NOT_AUTHORIZED, status)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is OasstError
    assert (back.message, back.error_code, back.http_status_code) == ("bad key", err.error_code, status)
    assert str(back) == str(err)


def test_oasst_error_str_and_repr_name_everything() -> None:
    err = OasstError("bad key", OasstErrorCode.API_CLIENT_NOT_AUTHORIZED, HTTPStatus.FORBIDDEN)
    text = str(err)
    assert "bad key" in text and "API_CLIENT_NOT_AUTHORIZED" in text and "403" in text and "2" in text
    rep = repr(err)
    assert rep.startswith("OasstError(") and "'bad key'" in rep and "403" in rep
    assert "API_CLIENT_NOT_AUTHORIZED" in rep or "2" in rep


def test_oasst_error_is_raisable_and_catchable() -> None:
    with pytest.raises(OasstError) as info:
        raise OasstError("x", OasstErrorCode.TASK_EXPIRED, HTTPStatus.GONE)
    assert info.value.http_status_code == 410
