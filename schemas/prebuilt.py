"""Wire models built from values their producer guarantees valid, skipping pydantic's validation; compiled.

For the hot paths that build a model per message or per call from values already
valid: the SIP parser's fields, a finished call's own record, an alert's evidence
from an event. Validation was a sixth of the per-message time (issue 14), and
``WireModel.trusted(**fields)`` still costs an interpreted call, a keyword dict
and a new fields-set per model; here compiled callers pay one C call and share
the class's one set (pydantic only reads it; ``model_copy`` copies it first).
Tests hold every model built so equal to the validated one.
"""

from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:  # base.py's WireModel.trusted calls prebuilt: a runtime import would be a cycle
    from callqual.schemas.base import WireModel

__all__ = ["every_field", "prebuilt"]

M = TypeVar("M", bound="WireModel")

_new: Final = object.__new__
_set: Final = object.__setattr__


def every_field(cls: "type[WireModel]") -> set[str]:
    """The fields-set of a ``cls`` built with every field given: make it once, share it."""
    return set(cls.model_fields)


def prebuilt(cls: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """``cls`` holding ``fields`` (every field, none validated) and ``fields_set`` (``every_field``)."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj
