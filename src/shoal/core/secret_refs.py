"""`{{ secret.NAME }}` references in env values."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REF = re.compile(r"\{\{\s*secret\.([A-Za-z0-9_-]+)\s*\}\}")


def referenced_secrets(value: str) -> list[str]:
    return _REF.findall(value)


def interpolate(value: str, secrets: Mapping[str, str]) -> str:
    """Replace every reference by its secret's value (all must be known)."""
    return _REF.sub(lambda m: secrets[m.group(1)], value)
