"""Shared base for wire models."""

from pydantic import BaseModel, ConfigDict

#: Bumped on any change a consumer of an older version could misread.
SCHEMA_VERSION = 1


class WireModel(BaseModel):
    """Frozen, strict-about-unknown-fields base for every wire message.

    ``extra="forbid"`` makes a producer/consumer version skew fail loudly in
    tests instead of silently dropping fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
