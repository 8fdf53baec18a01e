"""Grafana's PostgreSQL macros, expanded as Grafana expands them (grafana-postgresql-datasource macros.go).

Only the macros our dashboards use; anything else left in the SQL fails the test that uses it.
"""

import re
from datetime import datetime

_INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(interval: str) -> int:
    match = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    if match is None:
        raise ValueError(f"unsupported interval {interval!r}")
    return int(match.group(1)) * _INTERVALS[match.group(2)]


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(sql: str, start: datetime, end: datetime) -> str:
    def time_filter(m: re.Match[str]) -> str:
        return f"{m.group(1).strip()} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'"

    def time_group(m: re.Match[str], alias: bool) -> str:
        column, interval = (p.strip() for p in m.group(1).split(",")[:2])
        n = _seconds(interval)
        out = f"floor(extract(epoch from {column})/{n})*{n}"
        return out + ' AS "time"' if alias else out

    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", time_filter, sql)
    sql = re.sub(r"\$__timeGroupAlias\(([^)]*)\)", lambda m: time_group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^)]*)\)", lambda m: time_group(m, False), sql)
    sql = sql.replace("$__timeFrom()", f"'{_rfc3339(start)}'").replace("$__timeTo()", f"'{_rfc3339(end)}'")
    if "$__" in sql:
        raise ValueError(f"unexpanded macro in {sql!r}")
    return sql
