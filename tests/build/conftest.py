"""Build tests run against a real registry on loopback, with images they build themselves."""

from tests.support.fixtures import image_builder, private_registry, registry  # noqa: F401
