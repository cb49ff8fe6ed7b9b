"""Backend error codes and the ``OasstError`` exception (import paths as in the reference)."""

from oasst_shared.exceptions.error_codes import OasstErrorCode
from oasst_shared.exceptions.oasst_api_error import OasstError

__all__ = ["OasstError", "OasstErrorCode"]
