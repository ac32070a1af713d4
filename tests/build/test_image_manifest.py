"""Choosing the manifest to pull, and reading an OCI layout's config."""

from __future__ import annotations

import json

import pytest

from shoal.build.image_errors import UnsupportedImage
from shoal.build.manifest import digest_of, image_digest, layout_config

AMD = "sha256:" + "1" * 64
ARM = "sha256:" + "2" * 64


def index(media_type: str | None = "application/vnd.oci.image.index.v1+json") -> bytes:
    document: dict = {
        "schemaVersion": 2,
        "manifests": [
            {
                "digest": "sha256:" + "3" * 64,
                "platform": {"os": "windows", "architecture": "amd64"},
            },
            {"digest": ARM, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": AMD, "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    if media_type:
        document["mediaType"] = media_type
    return json.dumps(document).encode()


def test_single_manifest_is_its_own_digest():
    raw = b'{"schemaVersion":2,"config":{},"layers":[]}'
    assert image_digest(raw, "amd64") == digest_of(raw)
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest_of(b"") == f"sha256:{empty}"


@pytest.mark.parametrize(
    "media_type",
    [
        None,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ],
)
def test_index_yields_the_platform_entry(media_type):
    assert image_digest(index(media_type), "amd64") == AMD
    assert image_digest(index(media_type), "arm64") == ARM


def test_index_without_the_platform():
    with pytest.raises(UnsupportedImage, match="no variant for linux/riscv64"):
        image_digest(index(), "riscv64")


@pytest.mark.parametrize("raw", [b"not json", b"[1]"])
def test_malformed_manifest(raw):
    with pytest.raises(UnsupportedImage, match="manifest is not"):
        image_digest(raw, "amd64")


def test_layout_config(tmp_path):
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    config = b'{"config":{"Cmd":["x"]}}'
    manifest = json.dumps({"config": {"digest": digest_of(config)}}).encode()
    for blob in (config, manifest):
        (blobs / digest_of(blob).removeprefix("sha256:")).write_bytes(blob)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "manifests": [
                    {
                        "digest": digest_of(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "t"},
                    },
                ]
            }
        )
    )
    assert layout_config(tmp_path, "t") == config
    with pytest.raises(UnsupportedImage, match="no manifest tagged 'other'"):
        layout_config(tmp_path, "other")


def test_layout_refuses_a_digest_that_is_a_path(tmp_path):
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "manifests": [
                    {
                        "digest": "sha256:../../etc/passwd",
                        "annotations": {"org.opencontainers.image.ref.name": "t"},
                    },
                ]
            }
        )
    )
    with pytest.raises(UnsupportedImage, match="malformed digest"):
        layout_config(tmp_path, "t")
