"""Settings of the web UI: one frozen model, from flags and ``CALLQUAL_UI_*`` variables.

The token has no flag (it would show in ``ps``). Bound to anything but loopback the UI is
reachable by others, so the model refuses to exist without a token there: the check lives
here, once, not in the CLI or the app.
"""

import ipaddress

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a name could resolve anywhere, so it is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLQUAL_UI_", extra="ignore", frozen=True)

    #: The call store (``sqlite:///calls.db`` or ``postgresql://...``)
    store_url: str
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    #: Required off loopback: bearer token for /api, login password for browsers
    token: SecretStr | None = None
    #: Rows per page of the alerts and calls lists
    page_size: int = Field(default=50, ge=1, le=500)
    #: How often the live feeds ask the store for new alerts
    live_poll_s: float = Field(default=0.25, gt=0, le=10)
    #: The overview covers this many hours up to now; None: everything stored (a capture's store)
    overview_hours: float | None = Field(default=24.0, gt=0)
    #: Rows a CSV export holds at most (the rest is cut, and the cut is said in the file)
    csv_max_rows: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _token_off_loopback(self) -> "UiSettings":
        if not is_loopback(self.host) and (self.token is None or not self.token.get_secret_value()):
            raise ValueError(f"serving on {self.host} (not loopback) needs CALLQUAL_UI_TOKEN")
        return self
