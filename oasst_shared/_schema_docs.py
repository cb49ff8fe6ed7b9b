"""Class docstrings are documentation, never part of a JSON Schema.

msgspec and pydantic copy a class docstring into the class's JSON Schema as ``description``.
The reference's message schemas carry none, so our exports drop them: adding or editing a
docstring never changes a schema (``oasst_shared.schemas.json_schema`` for the msgspec export,
``oasst_compat.OasstModel`` for the Pydantic views). This module holds the hook the message enums
use for pydantic; it imports nothing, so the core package still needs no pydantic.
"""

from __future__ import annotations

from typing import Any

__all__ = ["schema_without_docstring"]


def _schema_without_docstring(cls: type, core_schema: Any, handler: Any) -> Any:
    """Pydantic's JSON Schema of ``cls``, without the ``description`` it took from the docstring.

    ``handler`` is pydantic's ``GetJsonSchemaHandler``; the schema it returns may be a ``$ref``,
    so the referenced definition is the one changed.
    """
    json_schema = handler(core_schema)
    handler.resolve_ref_schema(json_schema).pop("description", None)
    return json_schema


schema_without_docstring: classmethod[Any, [Any, Any], Any] = classmethod(_schema_without_docstring)
"""An enum's ``__get_pydantic_json_schema__ = schema_without_docstring``: pydantic calls it to
build the enum's JSON Schema (a classmethod; one object serves every enum)."""
