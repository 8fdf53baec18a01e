"""Shared base for wire models."""

from pydantic import BaseModel, ConfigDict

#: Bumped on any change a consumer of an older version could misread.
SCHEMA_VERSION = 1


class WireModel(BaseModel):
    """Frozen, strict-about-unknown-fields base for every wire message.

    ``extra="forbid"`` makes a producer/consumer version skew fail loudly in
    tests instead of silently dropping fields. ``allow_inf_nan=False``: JSON
    cannot carry NaN or infinities (pydantic writes them as ``null``), and a NaN
    capture time read from a hostile ``NaN`` literal crashed the detector's
    windows; such a message is now a validation error, dead-lettered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
