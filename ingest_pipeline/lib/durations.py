"""Durations as the tenants file and the settings write them: `12h`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

DURATION_PATTERN = r"^\d+[hd]$"
_DURATION = re.compile(r"(\d+)\s*([hd])")


def parse_duration(value: Any) -> timedelta:
    """`12h`, `7d` as a timedelta; anything else is a ValueError naming the form."""
    if isinstance(value, timedelta):
        return value
    found = _DURATION.fullmatch(str(value).strip())
    if not found:
        raise ValueError(f"{value!r} is not a duration like 12h or 30d")
    amount, unit = int(found[1]), found[2]
    return timedelta(hours=amount) if unit == "h" else timedelta(days=amount)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
