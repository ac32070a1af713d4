"""The node agents' side of the control-plane API (`/internal/v1/...`)."""

from __future__ import annotations

from typing import Any

import httpx
from websockets.asyncio.client import connect

from shoal.client.errors import ApiError, ApiUnreachable
from shoal.client.streams import ws_url
from shoal.core.assignment import AssignmentList, NodeHello, NodeReply, ReportBatch
from shoal.core.edge import EdgeTable
from shoal.core.metrics import RequestSample


class NodeClient:
    def __init__(
        self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=30, headers=self._headers
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise ApiUnreachable(str(self._http.base_url), str(e) or type(e).__name__) from e
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = None
            raise ApiError.from_body(r.status_code, body, f"{method} {path}: HTTP {r.status_code}")
        return r

    async def hello(self, hello: NodeHello) -> str:
        r = await self._call("POST", "/internal/v1/nodes", json=hello.model_dump(mode="json"))
        return NodeReply.model_validate(r.json()).node_id

    async def assignments(
        self, node_id: str, known: str, wait_s: float
    ) -> tuple[AssignmentList, str]:
        """The node's assignments; the server holds the answer up to `wait_s` while they
        still match the `known` fingerprint (long poll)."""
        r = await self._call(
            "GET",
            f"/internal/v1/nodes/{node_id}/assignments",
            params={"known": known, "wait": wait_s},
            timeout=wait_s + 30,
        )
        return AssignmentList.model_validate(r.json()), r.headers.get("etag", "")

    async def edge_routes(self, known: str, wait_s: float) -> tuple[EdgeTable, str]:
        """The edge's route table and its fingerprint, held up to `wait_s` while it still
        matches `known` (long poll)."""
        r = await self._call(
            "GET",
            "/internal/v1/edge/routes",
            params={"known": known, "wait": wait_s},
            timeout=wait_s + 30,
        )
        return EdgeTable.model_validate(r.json()), r.headers.get("etag", "")

    async def edge_metrics(self, samples: list[RequestSample]) -> None:
        """The edge's request metrics of its last window."""
        body = [s.model_dump(mode="json") for s in samples]
        await self._call("POST", "/internal/v1/edge/metrics", json=body)

    async def wake(self, service_id: str) -> bool:
        """Wake a sleeping service; False when it was not asleep (nothing to wait for)."""
        r = await self._call("POST", "/internal/v1/edge/wake", json={"service_id": service_id})
        return bool(r.json().get("asleep"))

    async def archive(self, node_id: str, archive_id: str) -> bytes:
        """An uploaded archive a build of the node needs."""
        r = await self._call("GET", f"/internal/v1/nodes/{node_id}/archives/{archive_id}")
        return r.content

    async def report(self, node_id: str, batch: ReportBatch) -> None:
        await self._call(
            "POST", f"/internal/v1/nodes/{node_id}/report", json=batch.model_dump(mode="json")
        )

    def exec_channel(self, session_id: str) -> connect:
        """The WebSocket of one exec session (`async with`): `ExecInput` frames come in,
        `ExecOutput` frames go out."""
        url = ws_url(self._base_url, f"/internal/v1/exec/{session_id}")
        return connect(url, additional_headers=self._headers)
