"""Image references are normalized as Docker normalizes them."""

from __future__ import annotations

import pytest

from shoal.build.image_errors import InvalidReference
from shoal.build.reference import ImageRef, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ImageRef("docker.io", "library/nginx", "latest", None)),
        ("nginx:1.27", ImageRef("docker.io", "library/nginx", "1.27", None)),
        ("koyeb/demo", ImageRef("docker.io", "koyeb/demo", "latest", None)),
        ("docker.io/nginx", ImageRef("docker.io", "library/nginx", "latest", None)),
        ("index.docker.io/library/nginx:x", ImageRef("docker.io", "library/nginx", "x", None)),
        ("ghcr.io/org/team/app:v1.2-rc_3", ImageRef("ghcr.io", "org/team/app", "v1.2-rc_3", None)),
        ("localhost/app", ImageRef("localhost", "app", "latest", None)),
        ("localhost:5000/app:t", ImageRef("localhost:5000", "app", "t", None)),
        ("127.0.0.1:5000/a/b", ImageRef("127.0.0.1:5000", "a/b", "latest", None)),
        ("[::1]:5000/app", ImageRef("[::1]:5000", "app", "latest", None)),
        (f"nginx@{DIGEST}", ImageRef("docker.io", "library/nginx", None, DIGEST)),
        (f"reg.example:443/app:1@{DIGEST}", ImageRef("reg.example:443", "app", "1", DIGEST)),
        ("  my-app__x.y  ", ImageRef("docker.io", "library/my-app__x.y", "latest", None)),
        # no dot, colon or "localhost": a path component, not a registry
        ("myregistry/app", ImageRef("docker.io", "myregistry/app", "latest", None)),
    ],
)
def test_parse(text, expected):
    assert parse_reference(text) == expected


def test_str_and_sources():
    ref = parse_reference("nginx")
    assert str(ref) == "docker.io/library/nginx:latest"
    assert ref.source() == "docker://docker.io/library/nginx:latest"
    assert ref.pinned(DIGEST) == f"docker://docker.io/library/nginx@{DIGEST}"
    pinned = parse_reference(f"ghcr.io/a/b:1@{DIGEST}")
    assert str(pinned) == f"ghcr.io/a/b:1@{DIGEST}"
    assert pinned.source() == f"docker://ghcr.io/a/b@{DIGEST}"


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("localhost/a", True),
        ("localhost:5000/a", True),
        ("127.0.0.1:5000/a", True),
        ("127.9.8.7/a", True),
        ("[::1]:5000/a", True),
        ("nginx", False),
        ("ghcr.io/a", False),
        ("10.0.0.1:5000/a", False),
        ("localhost.example.com/a", False),
    ],
)
def test_loopback(text, loopback):
    assert parse_reference(text).is_loopback() is loopback


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "a repository is lowercase"),
        ("Nginx", "a repository is lowercase"),
        ("ghcr.io/Org/app", "a repository is lowercase"),
        ("app:", "bad tag"),
        ("app:-x", "bad tag"),
        ("app@sha256:1234", "the digest must be"),
        ("app@md5:" + "a" * 32, "the digest must be"),
        ("bad_host:5000/app", "bad registry"),
        ("a//b", "a repository is lowercase"),
    ],
)
def test_invalid(text, why):
    with pytest.raises(InvalidReference) as err:
        parse_reference(text)
    assert str(err.value).startswith(f"invalid image reference {text!r}: {why}")
