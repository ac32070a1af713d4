"""skopeo's complaints become typed errors with messages for users."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.build.image_errors import (
    AuthenticationRequired,
    ImageError,
    ImageNotFound,
    RegistryUnreachable,
)
from shoal.build.reference import parse_reference
from shoal.build.registry_auth import AuthFile
from shoal.build.skopeo import Remote, classify


def fatal(msg: str) -> str:
    escaped = msg.replace('"', '\\"')
    return f'time="2026-11-21T23:44:23Z" level=fatal msg="{escaped}"\n'


def remote(text: str = "127.0.0.1:5055/t1:nope", auth: bool = False) -> Remote:
    return Remote(
        parse_reference(text),
        tls_verify=False,
        auth=AuthFile("/dev/fd/9", 9) if auth else None,
        tmpdir=Path("/tmp"),
    )


def test_not_found():
    err = classify(
        remote(),
        fatal(
            'Error parsing image name "docker://127.0.0.1:5055/t1:nope": '
            "reading manifest nope in 127.0.0.1:5055/t1: manifest unknown: "
            "manifest unknown"
        ),
    )
    assert isinstance(err, ImageNotFound)
    assert str(err) == "image 127.0.0.1:5055/t1:nope not found in registry"


def test_not_found_on_docker_hub_name():
    err = classify(
        remote("nope:1"), fatal("reading manifest 1 in docker.io/library/nope: name unknown")
    )
    assert str(err) == "image docker.io/library/nope:1 not found in registry"


def test_authentication_required():
    stderr = fatal(
        'Error parsing image name "docker://127.0.0.1:5055/t1:nope": reading manifest '
        "nope in 127.0.0.1:5055/t1: unauthorized: authentication required"
    )
    err = classify(remote(), stderr)
    assert isinstance(err, AuthenticationRequired)
    assert str(err) == (
        "authentication required for registry 127.0.0.1:5055: set image_registry_secret"
    )
    err = classify(remote(auth=True), stderr)
    assert str(err) == (
        "registry 127.0.0.1:5055 refused the credentials of "
        "image_registry_secret for 127.0.0.1:5055/t1:nope"
    )


def test_unreachable():
    err = classify(
        remote(),
        fatal(
            'Error parsing image name "docker://127.0.0.1:5055/t1:nope": pinging container '
            "registry "
            '127.0.0.1:5055: Get "http://127.0.0.1:5055/v2/": dial tcp 127.0.0.1:5055: connect: '
            "connection refused"
        ),
    )
    assert isinstance(err, RegistryUnreachable)
    assert str(err).startswith("registry unreachable: 127.0.0.1:5055 (pinging container registry")
    assert str(err).endswith("connection refused)")


def test_words_in_the_image_name_do_not_count():
    ref = "127.0.0.1:5055/denied-timeout/not-found:eof"
    detail = f"reading manifest eof in 127.0.0.1:5055/denied-timeout/not-found: {ref} is odd"
    err = classify(remote(ref), fatal(detail))
    assert type(err) is ImageError
    assert str(err) == f"pulling image {ref} failed: {detail}"


@pytest.mark.parametrize("stderr", ["", "\n\n"])
def test_silent_failure(stderr):
    assert str(classify(remote(), stderr)) == (
        "pulling image 127.0.0.1:5055/t1:nope failed: skopeo failed without a message"
    )


def test_plain_last_line():
    err = classify(remote(), "Getting image source signatures\nError: no space left on device\n")
    assert str(err) == "pulling image 127.0.0.1:5055/t1:nope failed: Error: no space left on device"
