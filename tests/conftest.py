from __future__ import annotations

from typing import Any

import pytest

from tests.specs import SPECS_MISSING_REASON, load_spec, specs_available


@pytest.fixture(scope="session")
def ref_models() -> Any:
    """The reference models spec (oasst-reference-models.json)."""
    if not specs_available():
        pytest.skip(SPECS_MISSING_REASON)
    return load_spec("oasst-reference-models.json")


@pytest.fixture(scope="session")
def backend_openapi() -> Any:
    """The backend's OpenAPI document (backend-openapi.json)."""
    if not specs_available():
        pytest.skip(SPECS_MISSING_REASON)
    return load_spec("backend-openapi.json")
