"""Optional dependencies: a missing one says which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, extra: str, needed_by: str) -> ModuleType:
    """Import ``module``; if it is not installed, raise a ``ModuleNotFoundError`` that says
    ``needed_by`` needs it and how to install it (``pip install 'oasst-shared[EXTRA]'``).

    A module that is installed but fails to import for another reason raises as usual.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.partition(".")[0] != exc.name.partition(".")[0]:
            raise
        raise ModuleNotFoundError(
            f"{needed_by} needs {module}, which is not installed: pip install 'oasst-shared[{extra}]'",
            name=exc.name,
        ) from exc
