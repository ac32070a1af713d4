"""A typed, synchronous client of the shoal API (Koyeb API v1 paths and JSON).

Replies come back as the API's JSON objects (`dict`), unwrapped from their envelope:
`get_app` returns the `app` object, `list_apps` every app over all pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import httpx

from shoal.client import streams
from shoal.client.errors import ApiError, ApiUnreachable
from shoal.core.definition import DeploymentDefinition

JSON = dict[str, Any]
PAGE_SIZE = 100  # the API's largest page


def _segment(ident: str) -> str:
    return quote(ident, safe="")


class ShoalClient:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShoalClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: JSON | None = None,
        content: bytes | None = None,
    ) -> JSON:
        try:
            r = self._http.request(method, path, params=params, json=body, content=content)
        except httpx.TransportError as e:
            raise ApiUnreachable(self.base_url, str(e) or type(e).__name__) from e
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.is_error:
            raise ApiError.from_body(r.status_code, data, f"HTTP {r.status_code} {r.reason_phrase}")
        if not isinstance(data, dict):
            raise ApiError(r.status_code, "api_error", f"{method} {path}: no JSON object in reply")
        return data

    def _one(self, method: str, path: str, key: str, body: JSON | None = None) -> JSON:
        """The resource under `key` in the reply (`{"app": {...}}` -> the app)."""
        item = self._call(method, path, body=body).get(key)
        if not isinstance(item, dict):
            raise ApiError(200, "api_error", f"{method} {path}: the reply has no {key!r} object")
        return item

    def _list(self, path: str, key: str, **filters: Any) -> list[JSON]:
        """Every item of a paginated listing."""
        params = {k: v for k, v in filters.items() if v is not None}
        items: list[JSON] = []
        while True:
            window = {"limit": PAGE_SIZE, "offset": len(items)}
            page = self._call("GET", path, params={**params, **window})
            batch = page.get(key) or []
            items.extend(batch)
            if not batch or len(items) >= int(page.get("count", 0)):
                return items

    # Apps

    def check_token(self) -> None:
        """Raise ApiError unless the token is accepted (one cheap authenticated call)."""
        self._call("GET", "/v1/apps", params={"limit": 1})

    def list_apps(self) -> list[JSON]:
        return self._list("/v1/apps", "apps")

    def get_app(self, ident: str) -> JSON:
        return self._one("GET", f"/v1/apps/{_segment(ident)}", "app")

    def create_app(self, name: str) -> JSON:
        return self._one("POST", "/v1/apps", "app", {"name": name})

    def rename_app(self, ident: str, name: str) -> JSON:
        return self._one("PUT", f"/v1/apps/{_segment(ident)}", "app", {"name": name})

    def delete_app(self, ident: str) -> None:
        self._call("DELETE", f"/v1/apps/{_segment(ident)}")

    def pause_app(self, ident: str) -> None:
        self._call("POST", f"/v1/apps/{_segment(ident)}/pause")

    def resume_app(self, ident: str) -> None:
        self._call("POST", f"/v1/apps/{_segment(ident)}/resume")

    # Services

    def list_services(self, app_id: str | None = None, name: str | None = None) -> list[JSON]:
        return self._list("/v1/services", "services", app_id=app_id, name=name)

    def get_service(self, ident: str) -> JSON:
        """By id, short id, or `app/service`."""
        if "/" in ident:
            # The API's `/v1/services/{id}` route cannot carry a slash: find the id by listing.
            app_ident, _, name = ident.partition("/")
            app = self.get_app(app_ident)
            found = [s for s in self.list_services(app["id"], name) if s["name"] == name]
            if not found:
                raise ApiError(404, "not_found", f"service {ident!r} not found")
            ident = found[0]["id"]
        return self._one("GET", f"/v1/services/{_segment(ident)}", "service")

    def create_service(self, app_id: str, definition: DeploymentDefinition) -> JSON:
        body = {"app_id": app_id, "definition": definition.wire()}
        return self._one("POST", "/v1/services", "service", body)

    def update_service(self, service_id: str, definition: DeploymentDefinition) -> JSON:
        body = {"definition": definition.wire()}
        return self._one("PUT", f"/v1/services/{_segment(service_id)}", "service", body)

    def delete_service(self, service_id: str) -> None:
        self._call("DELETE", f"/v1/services/{_segment(service_id)}")

    def pause_service(self, service_id: str) -> None:
        self._call("POST", f"/v1/services/{_segment(service_id)}/pause")

    def resume_service(self, service_id: str) -> None:
        self._call("POST", f"/v1/services/{_segment(service_id)}/resume")

    def redeploy_service(self, service_id: str) -> JSON:
        """Returns the new deployment."""
        return self._one("POST", f"/v1/services/{_segment(service_id)}/redeploy", "deployment", {})

    # Deployments and instances

    def upload_archive(self, content: bytes) -> JSON:
        """Provision an archive, upload `content` (a gzipped tar) to it; returns the archive."""
        archive = self._one("POST", "/v1/archives", "archive", {"size": str(len(content))})
        self._call("PUT", archive["upload_url"], content=content)  # an absolute, signed URL
        return archive

    def list_deployments(
        self, app_id: str | None = None, service_id: str | None = None
    ) -> list[JSON]:
        return self._list("/v1/deployments", "deployments", app_id=app_id, service_id=service_id)

    def get_deployment(self, ident: str) -> JSON:
        return self._one("GET", f"/v1/deployments/{_segment(ident)}", "deployment")

    def cancel_deployment(self, ident: str) -> None:
        self._call("POST", f"/v1/deployments/{_segment(ident)}/cancel")

    def list_instances(self, service_id: str | None = None) -> list[JSON]:
        return self._list("/v1/instances", "instances", service_id=service_id)

    def get_instance(self, ident: str) -> JSON:
        return self._one("GET", f"/v1/instances/{_segment(ident)}", "instance")

    def exec(
        self, ident: str, command: list[str], *, service: bool = False, tty: bool = False
    ) -> AbstractContextManager[streams.ExecChannel]:
        """Run `command` in the instance `ident`, or in one HEALTHY instance of the service
        `ident` (by id) when `service`."""
        id_type = "SERVICE_ID" if service else "INSTANCE_ID"
        return streams.open_exec(self.base_url, self._token, ident, id_type, command, tty)

    # Logs

    def query_logs(self, **filters: Any) -> JSON:
        """`{data: [lines], pagination}`: filters as `/v1/streams/logs/query` takes them."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self._call("GET", "/v1/streams/logs/query", params=params)

    def tail_logs(self, **filters: Any) -> Iterator[JSON]:
        """Log lines as they come: the backlog first (as `/v1/streams/logs/tail` takes it)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return streams.tail_logs(self.base_url, self._token, params)

    # Secrets

    def list_secrets(self) -> list[JSON]:
        return self._list("/v1/secrets", "secrets")

    def get_secret(self, ident: str) -> JSON:
        return self._one("GET", f"/v1/secrets/{_segment(ident)}", "secret")

    def create_secret(self, body: JSON) -> JSON:
        """`body` is Koyeb's CreateSecret: `{name, type, value}` or `{name, type, *_registry}`."""
        return self._one("POST", "/v1/secrets", "secret", body)

    def update_secret(self, ident: str, body: JSON) -> JSON:
        return self._one("PUT", f"/v1/secrets/{_segment(ident)}", "secret", body)

    def delete_secret(self, ident: str) -> None:
        self._call("DELETE", f"/v1/secrets/{_segment(ident)}")

    def reveal_secret(self, ident: str) -> Any:
        """A simple secret's value (a string), or a registry secret's configuration."""
        return self._call("POST", f"/v1/secrets/{_segment(ident)}/reveal", body={})["value"]

    # Catalog

    def list_instance_types(self) -> list[JSON]:
        return self._list("/v1/catalog/instances", "instances")

    def list_regions(self) -> list[JSON]:
        return self._list("/v1/catalog/regions", "regions")

    # Usage

    def usage(self, starting_time: str | None, ending_time: str | None) -> JSON:
        params = {"starting_time": starting_time, "ending_time": ending_time}
        given = {k: v for k, v in params.items() if v}
        usage: JSON = self._call("GET", "/v1/usages", params=given)["usage"]
        return usage
