"""The core's error codes and ``OasstError``, under the ``oasst_compat`` prefix (same objects)."""

from oasst_shared.exceptions import OasstError, OasstErrorCode

__all__ = ["OasstError", "OasstErrorCode"]
