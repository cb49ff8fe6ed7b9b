"""``oasst_shared.exceptions.error_codes`` under the ``oasst_compat`` prefix (same objects)."""

from oasst_shared.exceptions.error_codes import OasstErrorCode

__all__ = ["OasstErrorCode"]
