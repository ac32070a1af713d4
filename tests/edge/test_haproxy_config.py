"""HAProxy's configuration text (pure), checked by HAProxy itself where it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.edge.haproxy_config import (
    ApiFront,
    Backend,
    ClientRegion,
    map_key,
    render,
    render_edge,
    route_map,
    server_line,
    sleeper,
    sources_map,
)

REGIONS = ClientRegion(("fra", "was"), "fra", "X-Shoal-Region", "/run/sources.map")


def test_routes_match_whole_path_segments():
    assert map_key("fra", "a.x", "/api") == map_key("fra", "a.x", "/api/") == "fra@a.x/api/"
    assert map_key("was", "a.x", "/") == "was@a.x/"
    # A request is looked up by region@host + path + "/": "/api" and "/api/list" find
    # "fra@a.x/api/", "/apix" does not.
    for path, found in (("/api", True), ("/api/list", True), ("/apix", False)):
        assert f"fra@a.x{path}/".startswith(map_key("fra", "a.x", "/api")) == found


def test_client_addresses_map_to_regions():
    text = "# office\n10.1.0.0/16 FRA\n\n2001:db8::/32 was  # lab\n192.0.2.7 was\n"
    assert sources_map(text, ("fra", "was")) == (
        "10.1.0.0/16 fra\n2001:db8::/32 was\n192.0.2.7/32 was\n"
    )
    for bad, why in (
        ("10.1.0.0/16", "line 1: expected 'CIDR region'"),
        ("ok 10.0.0.0/8 fra", "line 1: expected 'CIDR region'"),
        ("\n10.0.0.300/8 fra", "line 2: "),
        ("10.0.0.0/8 mars", "line 1: unknown region 'mars'"),
    ):
        with pytest.raises(ValueError, match=why):
            sources_map(bad, ("fra", "was"))


def test_longest_prefix_comes_first_in_the_map():
    text = route_map([("a.x/", "root"), ("a.x/api/v2", "v2"), ("a.x/api", "api"), ("b.x/", "b")])
    assert text.splitlines() == ["a.x/api/v2 v2", "a.x/api api", "a.x/ root", "b.x/ b"]


def test_prefix_stripping_rules():
    cfg = render_edge(
        "127.0.0.1",
        8080,
        [
            (Backend("r-root", "/", False), []),
            (Backend("r-api", "/api.v1", True), [server_line("i1", "10.0.0.1", 9000, True)]),
        ],
        "/run/routes.map",
        REGIONS,
        "/run/edge.sock",
        "/run/requests.sock",
        "/run/activator.sock",
        "/run/sleepers.map",
    )
    assert "replace-path '^/api\\.v1/?(.*)$' '/\\1'" in cfg
    assert "server i1 10.0.0.1:9000 proto h2" in cfg
    assert "server wake unix@/run/activator.sock weight 0" in cfg
    root = cfg.split("backend r-root", 1)[1].split("backend", 1)[0]
    assert "replace-path" not in root


@pytest.mark.skipif(shutil.which("haproxy", path="/usr/sbin:/usr/bin") is None, reason="no HAProxy")
def test_haproxy_takes_both_configurations(tmp_path: Path):
    haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin")
    assert haproxy
    (tmp_path / "routes.map").write_text(route_map([("fra@a.x/", "r-a")]))
    (tmp_path / "sources.map").write_text("10.0.0.0/8 was\n")
    (tmp_path / "sleepers.map").write_text("")
    edge = render_edge(
        "127.0.0.1",
        8080,
        [(Backend("r-a", "/", False), [server_line("i1", "10.0.0.1", 80, False)])],
        str(tmp_path / "routes.map"),
        ClientRegion(("fra", "was"), "fra", "X-Shoal-Region", str(tmp_path / "sources.map")),
        str(tmp_path / "edge.sock"),
        str(tmp_path / "requests.sock"),
        str(tmp_path / "activator.sock"),
        str(tmp_path / "sleepers.map"),
        [("t-20000", "", 20000, [server_line("i1", "10.0.0.1", 7000, False)])],
    )
    assert "listen t-20000\n    bind 127.0.0.1:20000" in edge
    api = render(
        ApiFront("::1", 8130, str(tmp_path / "a.sock"), (str(tmp_path / "b.sock"),)),
        str(tmp_path / "s.sock"),
    )
    for name, text in (("edge.cfg", edge), ("api.cfg", api)):
        (tmp_path / name).write_text(text)
        done = subprocess.run(
            [haproxy, "-c", "-f", str(tmp_path / name)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr


def test_a_sleeper_entry_is_one_word_of_four_parts():
    sock = "/tmp/shoal-agent-x/waker.sock"
    assert sleeper(sock, "i1", "10.0.0.1", 8000) == f"{sock},i1,10.0.0.1,8000"
    assert sleeper("/tmp/a b/waker.sock", "i1", "10.0.0.1", 8000) is None  # the map splits it
    assert sleeper("/tmp/a,b/waker.sock", "i1", "10.0.0.1", 8000) is None  # wake.lua would
    assert sleeper("", "i1", "10.0.0.1", 8000) is None
