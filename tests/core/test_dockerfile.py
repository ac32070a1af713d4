import pytest

from shoal.core.dockerfile import DockerfileError, base_images


def test_base_images_skip_stages_scratch_and_repeats():
    text = """
# syntax=docker/dockerfile:1
FROM --platform=linux/amd64 registry.example/python:3.12 AS build
RUN echo hi
from build as test
FROM scratch
FROM registry.example/python:3.12
COPY --from=build /a /b
FROM \\
  busybox:1.36 AS final
"""
    assert base_images(text) == ["registry.example/python:3.12", "busybox:1.36"]


def test_refusals():
    with pytest.raises(DockerfileError, match="no FROM"):
        base_images("RUN echo\n")
    with pytest.raises(DockerfileError, match="build arguments"):
        base_images("ARG BASE=alpine\nFROM $BASE\n")
    assert base_images("FROM scratch\nCOPY a /\n") == []
