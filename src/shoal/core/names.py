"""Name rules for apps, services and secrets."""

from __future__ import annotations

import re

# Lowercase letters, digits and dashes; starts with a letter or digit, ends with one too.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
MIN_NAME = 2
# An app name becomes part of a DNS label (`<app>-<org>.<domain>`), so names stay short.
MAX_NAME = 63
MAX_SECRET_NAME = 64


def name_problem(name: str | None, *, max_len: int = MAX_NAME) -> str | None:
    """Why `name` is not acceptable, or None when it is."""
    if not name:
        return "is required"
    if not MIN_NAME <= len(name) <= max_len:
        return f"must be between {MIN_NAME} and {max_len} characters"
    if not _NAME.match(name):
        return (
            "must contain only lowercase letters, digits and dashes, "
            "and start and end with a letter or digit"
        )
    return None
