"""The private mesh's addresses and names (pure)."""

from __future__ import annotations

import pytest

from shoal.core.mesh import BLOCKS, block, free_addresses, hosts


def test_each_organization_has_its_own_block():
    assert str(block(0)) == "100.112.0.0/22" and str(block(1)) == "100.112.4.0/22"
    assert str(block(BLOCKS - 1)) == "100.127.252.0/22"
    with pytest.raises(ValueError):
        block(BLOCKS)


def test_free_addresses_skip_the_taken_ones_and_a_full_block_says_so():
    assert free_addresses(1, {"100.112.4.1", "100.112.4.3"}, 2) == ["100.112.4.2", "100.112.4.4"]
    every = set(free_addresses(0, set(), 1022))
    assert len(every) == 1022 and "100.112.0.0" not in every and "100.112.3.255" not in every
    with pytest.raises(ValueError, match="holds 1022 addresses"):
        free_addresses(0, every, 1)


def test_hosts_name_the_apps_services_and_the_organizations_in_the_region():
    services = [
        ("a1", "shop", "db", {"": "100.112.0.1", "fra": "100.112.0.2"}),
        ("a2", "blog", "web", {"": "100.112.0.3", "was": "100.112.0.4"}),
    ]
    text = hosts("a1", "fra", services)
    assert "100.112.0.1 db\n" in text and "100.112.0.2 db.shop.internal\n" in text
    assert " web" not in text  # another app, and not in this region
    assert "100.112.0.4 web.blog.internal" in hosts("a1", "was", services)
