"""Registry credentials from Koyeb secrets, and the in-memory auth file skopeo reads."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from shoal.build.image_errors import AuthenticationRequired
from shoal.build.registry_auth import RegistryCredentials, auth_file, credentials_from_secret


@pytest.mark.parametrize(
    ("kind", "config", "expected"),
    [
        ("private_registry", {"username": "u", "password": "p", "url": "r.example"}, ("u", "p")),
        ("docker_hub_registry", {"username": "u", "password": "p"}, ("u", "p")),
        ("github_registry", {"username": "u", "password": "ghp_x"}, ("u", "ghp_x")),
        (
            "azure_container_registry",
            {"registry_name": "r", "username": "u", "password": "p"},
            ("u", "p"),
        ),
        (
            "gcp_container_registry",
            {"keyfile_content": "{...}", "url": "gcr.io"},
            ("_json_key", "{...}"),
        ),
    ],
)
def test_credentials_from_secret(kind, config, expected):
    creds = credentials_from_secret(kind, config)
    assert (creds.username, creds.password) == expected


@pytest.mark.parametrize("config", [{}, {"username": "u"}, {"username": "u", "password": ""}])
def test_incomplete_secret(config):
    with pytest.raises(AuthenticationRequired, match="has no username and password"):
        credentials_from_secret("private_registry", config)


def test_password_is_not_in_repr():
    assert "hunter2" not in repr(RegistryCredentials("u", "hunter2"))


def test_auth_file_lives_in_memory_only():
    with auth_file("127.0.0.1:5000", RegistryCredentials("u", "p:w")) as auth:
        target = os.readlink(f"/proc/self/fd/{auth.fd}")
        assert target.startswith("/memfd:")
        content = json.loads(Path(auth.path).read_text())
        assert json.loads(Path(auth.path).read_text()) == content  # readable again from the start
    token = base64.b64encode(b"u:p:w").decode()
    assert content == {"auths": {"127.0.0.1:5000": {"auth": token}}}
