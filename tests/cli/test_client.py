"""The client against a real platform, plus a proxy's non-Koyeb error page."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import free_port

from shoal.client import ApiError, ApiUnreachable, ShoalClient
from shoal.core.definition import DeploymentDefinition, DockerSource, Port


def test_api_errors_carry_koyebs_fields(tenant):
    with ShoalClient(tenant.url, tenant.token) as c:
        app = c.create_app("shop")
        bad = DeploymentDefinition(
            name="web",
            docker=DockerSource(image="nginx"),
            ports=[Port(port=70000, protocol="http")],
        )
        with pytest.raises(ApiError) as e:
            c.create_service(app["id"], bad)
    assert (e.value.status, e.value.code) == (400, "invalid_argument")
    assert [f.field for f in e.value.fields] == ["definition.ports[0].port"]


def test_pagination_reads_every_page(tenant):
    with ShoalClient(tenant.url, tenant.token) as c:
        for i in range(12):
            c.create_app(f"app-{i:02d}")
        assert len(c.list_apps()) == 12


def test_unreachable_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with ShoalClient(url, "t") as c, pytest.raises(ApiUnreachable, match=url):
        c.list_apps()


def test_an_error_page_that_is_not_koyebs_keeps_the_http_status():
    # What a reverse proxy in front of shoal answers when shoal is down: no real shoal says this.
    page = httpx.MockTransport(lambda _: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with (
        ShoalClient("http://shoal.example", "t", transport=page) as c,
        pytest.raises(ApiError) as e,
    ):
        c.get_app("shop")
    assert (e.value.status, e.value.code, e.value.message) == (
        502,
        "api_error",
        "HTTP 502 Bad Gateway",
    )
