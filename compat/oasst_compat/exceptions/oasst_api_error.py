"""``oasst_shared.exceptions.oasst_api_error`` under the ``oasst_compat`` prefix (same objects)."""

from oasst_shared.exceptions.oasst_api_error import OasstError

__all__ = ["OasstError"]
