"""HAProxy's configuration text (pure), checked by HAProxy itself where it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.edge.haproxy_config import (
    ApiFront,
    Backend,
    map_key,
    render,
    render_edge,
    route_map,
    server_line,
)


def test_routes_match_whole_path_segments():
    assert map_key("a.x", "/api") == map_key("a.x", "/api/") == "a.x/api/"
    assert map_key("a.x", "/") == "a.x/"
    # A request is looked up by host + path + "/": "/api" and "/api/list" find "a.x/api/",
    # "/apix" does not.
    for path, found in (("/api", True), ("/api/list", True), ("/apix", False)):
        assert f"a.x{path}/".startswith(map_key("a.x", "/api")) == found


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
        "/run/edge.sock",
    )
    assert "replace-path '^/api\\.v1/?(.*)$' '/\\1'" in cfg
    assert "server i1 10.0.0.1:9000 proto h2" in cfg
    root = cfg.split("backend r-root", 1)[1].split("backend", 1)[0]
    assert "replace-path" not in root


@pytest.mark.skipif(shutil.which("haproxy", path="/usr/sbin:/usr/bin") is None, reason="no HAProxy")
def test_haproxy_takes_both_configurations(tmp_path: Path):
    haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin")
    assert haproxy
    (tmp_path / "routes.map").write_text(route_map([("a.x/", "r-a")]))
    edge = render_edge(
        "127.0.0.1",
        8080,
        [(Backend("r-a", "/", False), [server_line("i1", "10.0.0.1", 80, False)])],
        str(tmp_path / "routes.map"),
        str(tmp_path / "edge.sock"),
    )
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
