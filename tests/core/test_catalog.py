"""The catalog is the seed's two tables."""

from __future__ import annotations

from decimal import Decimal

from shoal.core.catalog import INSTANCE_TYPES, format_size
from shoal.core.defaults import complete
from shoal.core.definition import DeploymentDefinition
from shoal.core.regional import regional_definition


def test_seed_tables():
    assert len(INSTANCE_TYPES) == 18
    nano = INSTANCE_TYPES["nano"]
    assert (nano.vcpu_shares, nano.memory_mb, format_size(nano.disk_mb)) == (0.25, 256, "2.5GB")
    assert nano.price_per_second == Decimal("0.000001")
    assert INSTANCE_TYPES["5xlarge"].price_monthly == Decimal("1371.34")
    assert INSTANCE_TYPES["eco-nano"].price_per_second == Decimal("0.0000006")
    assert INSTANCE_TYPES["free"].price_per_second == 0


def test_where_types_are_offered():
    assert INSTANCE_TYPES["free"].available_in("fra") and not INSTANCE_TYPES["free"].available_in(
        "sin"
    )
    assert INSTANCE_TYPES["eco-small"].available_in("sin")
    assert not INSTANCE_TYPES["eco-small"].available_in("par")
    assert INSTANCE_TYPES["large"].available_in("par")


def test_regional_definition_resolves_scopes():
    d = complete(
        DeploymentDefinition.model_validate(
            {
                "name": "web",
                "docker": {"image": "nginx"},
                "regions": ["fra", "was"],
                "instance_types": [{"type": "nano"}, {"type": "small", "scopes": ["region:was"]}],
                "scalings": [{"min": 1, "max": 1}, {"scopes": ["region:was"], "min": 2, "max": 4}],
                "env": [
                    {"key": "A", "value": "1"},
                    {"key": "A", "value": "2", "scopes": ["region:was"]},
                ],
            }
        ),
        "fra",
    )
    fra, was = regional_definition(d, "fra"), regional_definition(d, "was")
    assert (fra["instance_type"], fra["scaling"]["min"], fra["env"]) == (
        "nano",
        1,
        [{"key": "A", "value": "1"}],
    )
    assert (was["instance_type"], was["scaling"]["max"], was["env"]) == (
        "small",
        4,
        [{"key": "A", "value": "2"}],
    )
    assert fra["mesh"] == "REGIONAL_DEPLOYMENT_MESH_AUTO"
