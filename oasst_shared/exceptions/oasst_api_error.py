"""The exception raised by the backend and by the API client for backend errors."""

from __future__ import annotations

from http import HTTPStatus

from oasst_shared.exceptions.error_codes import OasstErrorCode


class OasstError(Exception):
    """An error with a backend error code and the HTTP status it maps to.

    The backend turns it into the JSON body ``{"message": ..., "error_code": ...}`` with
    ``http_status_code`` as the response status; the API client raises it from such a body.
    """

    message: str
    error_code: OasstErrorCode
    http_status_code: HTTPStatus

    def __init__(
        self,
        message: str,
        error_code: OasstErrorCode,
        http_status_code: HTTPStatus = HTTPStatus.BAD_REQUEST,
    ) -> None:
        # Passing all three to Exception keeps ``self.args`` complete, so pickling
        # (which re-calls ``cls(*args)``) restores every attribute.
        super().__init__(message, error_code, http_status_code)
        self.message = message
        self.error_code = error_code
        self.http_status_code = http_status_code

    def __str__(self) -> str:
        code = self.error_code
        code_text = f"{code.name} ({int(code)})" if isinstance(code, OasstErrorCode) else repr(code)
        return f"{self.message} [error_code={code_text}, http_status={int(self.http_status_code)}]"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, error_code={self.error_code!s}, "
            f"http_status_code={self.http_status_code!s})"
        )
