"""The API's WebSockets, synchronous: `/v1/streams/logs/tail` and `/v1/streams/instances/exec`
(Koyeb's frames: bytes as base64, errors as google.rpc.Status)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shoal.client.errors import ApiError, ApiUnreachable
from shoal.core.assignment import ExecOutput

JSON = dict[str, Any]
# The gRPC codes of error frames, as the HTTP status and code of the API's other errors.
_GRPC = {
    3: (400, "invalid_argument"),
    5: (404, "not_found"),
    6: (409, "conflict"),
    7: (403, "authorization_required"),
    9: (400, "failed_precondition"),
    14: (503, "unavailable"),
    16: (401, "authentication_error"),
}


def ws_url(base_url: str, path: str, params: Mapping[str, Any] | None = None) -> str:
    """`path` on the API at `base_url`, as a ws:// (wss:// for https) address."""
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    query = f"?{urlencode(params, doseq=True)}" if params else ""
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest}{path}{query}"


def _frame_error(error: Any) -> ApiError:
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status, name = _GRPC.get(code, (500, str(code)))  # logs tail's codes are the API's own
    return ApiError(status, name, str(error.get("message") or "the stream failed"))


@contextlib.contextmanager
def _connect(url: str, token: str | None) -> Iterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ws = connect(url, additional_headers=headers)
    except InvalidStatus as e:
        try:
            body = json.loads(e.response.body or b"")
        except ValueError:
            body = None
        status = e.response.status_code
        raise ApiError.from_body(status, body, f"HTTP {status} {e.response.reason_phrase}") from e
    except (OSError, TimeoutError, InvalidHandshake) as e:
        raise ApiUnreachable(url, str(e) or type(e).__name__) from e
    with ws:
        try:
            yield ws
        except ConnectionClosed as e:  # closed abnormally: a clean close ends the iteration
            raise ApiUnreachable(url, f"the connection was lost ({e})") from e


def _frames(ws: ClientConnection) -> Iterator[JSON]:
    """The result of every frame until the server closes; an error frame raises ApiError."""
    for message in ws:
        frame = json.loads(message)
        if frame.get("error"):
            raise _frame_error(frame["error"])
        yield frame.get("result") or {}


def tail_logs(base_url: str, token: str | None, filters: Mapping[str, Any]) -> Iterator[JSON]:
    """Log lines (`{msg, created_at, labels}`): the backlog, then new ones as they come."""
    with _connect(ws_url(base_url, "/v1/streams/logs/tail", filters), token) as ws:
        yield from _frames(ws)


class ExecChannel:
    """A command running in an instance. Iterating gives its output until the one with its
    exit code; stdin and resizes may be sent from another thread meanwhile."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self._url = url

    def send_stdin(self, data: bytes, close: bool = False) -> None:
        self._send({"stdin": {"data": base64.b64encode(data).decode(), "close": close}})

    def resize(self, height: int, width: int) -> None:
        self._send({"tty_size": {"height": height, "width": width}})

    def _send(self, body: JSON) -> None:
        with contextlib.suppress(ConnectionClosed):  # the command ended meanwhile
            self._ws.send(json.dumps({"body": body}))

    def __iter__(self) -> Iterator[ExecOutput]:
        for result in _frames(self._ws):
            out = ExecOutput(
                stdout=base64.b64decode((result.get("stdout") or {}).get("data") or ""),
                stderr=base64.b64decode((result.get("stderr") or {}).get("data") or ""),
                exit_code=int(result.get("exit_code") or 0) if result.get("exited") else None,
            )
            yield out
            if out.exit_code is not None:
                return
        raise ApiUnreachable(self._url, "the session closed before the command exited")


@contextlib.contextmanager
def open_exec(
    base_url: str, token: str | None, ident: str, id_type: str, command: list[str], tty: bool
) -> Iterator[ExecChannel]:
    """Start `command` in the instance `ident` (id_type INSTANCE_ID), or in one HEALTHY
    instance of the service `ident` (SERVICE_ID)."""
    url = ws_url(base_url, "/v1/streams/instances/exec")
    with _connect(url, token) as ws:
        first = {
            "id": ident,
            "idType": id_type,
            "body": {"command": command, "disableTty": not tty},
        }
        ws.send(json.dumps(first))
        yield ExecChannel(ws, url)
