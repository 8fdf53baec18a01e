"""Query-string filters of the lists, validated by pydantic, turned into the store's filters.

Times without a zone are UTC (what the pages show); a bad value is a 400 naming the field,
never a traceback.
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callqual.ui.store_access import AlertFilter, CallFilter


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    start: datetime | None = None
    end: datetime | None = None
    page: int = Field(default=1, ge=1, le=100_000)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def params(self) -> dict[str, Any]:
        """The filters as they go back into links (page excluded)."""
        out = self.model_dump(exclude={"page"}, exclude_none=True)
        for key in ("start", "end"):
            if key in out:
                out[key] = out[key].strftime("%Y-%m-%dT%H:%M:%S")
        return out


class CallQuery(_Query):
    user: str | None = Field(default=None, max_length=256)
    call_id: str | None = Field(default=None, max_length=1024)
    ip: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=32)
    rule: str | None = Field(default=None, max_length=64)
    mos_below: float | None = Field(default=None, ge=0, le=5)

    def to_filter(self, page_size: int, *, page: int | None = None) -> CallFilter:
        offset = ((page or self.page) - 1) * page_size
        return CallFilter(
            start=self.start,
            end=self.end,
            user=self.user,
            call_id=self.call_id,
            ip=self.ip,
            category=self.category,
            rule=self.rule,
            mos_below=self.mos_below,
            limit=page_size,
            offset=offset,
        )


class AlertQuery(_Query):
    severity: Literal["info", "warning", "critical"] | None = None
    rule: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=32)
    source: str | None = Field(default=None, max_length=64)

    def to_filter(self, page_size: int) -> AlertFilter:
        return AlertFilter(
            start=self.start,
            end=self.end,
            severity=self.severity,
            rule=self.rule,
            category=self.category,
            source=self.source,
            limit=page_size,
            offset=(self.page - 1) * page_size,
        )
