"""The wire encoding of every model the services exchange: pydantic JSON, UTF-8.

One function, so the Kafka sink, the collector's publisher, the in-process
bus and the fuzz harness all encode alike, and a value that cannot be encoded
fails in one typed way (:class:`UnserialisableError`) that a service counts
and dead-letters instead of dying on.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError


class UnserialisableError(ValueError):
    """A model could not be encoded as JSON (text that is not Unicode, a value JSON cannot hold)."""

    reason = "unserialisable"


def encode(value: BaseModel) -> bytes:
    """``value`` as the JSON bytes every topic carries."""
    try:
        return value.model_dump_json().encode()
    except (PydanticSerializationError, UnicodeEncodeError) as exc:
        raise UnserialisableError(f"{type(value).__name__}: {exc}") from exc
