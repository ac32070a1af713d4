"""Where the CLI finds its API address and token: flag > environment > config file > default.

`shoal login` writes `$XDG_CONFIG_HOME/shoal/config.json` (default `~/.config/shoal/`),
mode 0600, since it holds a token.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8130"


class ConfigError(Exception):
    """The config file exists but cannot be used."""


@dataclass(frozen=True)
class Saved:
    url: str | None = None
    token: str | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says to ignore a relative value.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "shoal" / "config.json"


def load() -> Saved:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Saved()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}; run `shoal login` again") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; run `shoal login` again")
    url, token = data.get("url"), data.get("token")
    return Saved(url if isinstance(url, str) else None, token if isinstance(token, str) else None)


def save(saved: Saved) -> Path:
    """Write the file atomically, readable by its owner only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": saved.url, "token": saved.token}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path
