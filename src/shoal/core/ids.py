"""Identifiers: UUIDv4 everywhere, 8-character short ids accepted where Koyeb accepts them."""

from __future__ import annotations

import re
import uuid

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHORT = re.compile(r"^[0-9a-f]{8}$")


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value.lower()))


def is_short_id(value: str) -> bool:
    return bool(_SHORT.match(value.lower()))
