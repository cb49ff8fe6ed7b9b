"""``oasst_shared.utils`` under the ``oasst_compat`` prefix (same objects), so that a consumer can
switch every ``oasst_shared`` import to ``oasst_compat`` at once."""

from oasst_shared.utils import (
    DELETED_USER_DISPLAY_NAME,
    DELETED_USER_ID_PREFIX,
    Anonymizer,
    ScopeTimer,
    log_timing,
    sha256_hash,
    unaware_to_utc,
    utcnow,
)

__all__ = [
    "DELETED_USER_DISPLAY_NAME",
    "DELETED_USER_ID_PREFIX",
    "Anonymizer",
    "ScopeTimer",
    "log_timing",
    "sha256_hash",
    "unaware_to_utc",
    "utcnow",
]
