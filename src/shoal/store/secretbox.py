"""Encryption at rest for secret material (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

KEY_ENV = "SHOAL_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, payload: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(payload).encode())

    def open(self, ciphertext: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(ciphertext))
        except InvalidToken as e:
            raise RuntimeError("secret cannot be decrypted: wrong SHOAL_SECRET_KEY?") from e
        return data

    def verify(self, token: bytes, max_age_s: int) -> dict[str, Any] | None:
        """What a token sealed at most `max_age_s` ago holds; None for a bad or old one
        (a token a client handed back, unlike the store's own ciphertexts)."""
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token, ttl=max_age_s))
        except (InvalidToken, ValueError):
            return None
        return data


def load_key(data_dir: Path) -> bytes:
    """The key from $SHOAL_SECRET_KEY, else `DIR/secret.key` (created 0600 on first start)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
