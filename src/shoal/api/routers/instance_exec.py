"""The WebSocket /v1/streams/instances/exec (Koyeb's frames), and the agents' side of it.

The user's first frame names an instance (or a service: one of its HEALTHY instances) and the
command. The session then waits in the relay until the agent of the instance's node, which
finds it in its assignments, connects to /internal/v1/exec/{session_id}; from there on frames
go both ways, translated: stdin and terminal sizes to the agent, output and the exit code back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any, Literal

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import Base64Bytes, BaseModel, Field, ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shoal.api.deps import Platform, authenticate_token, node_agent, platform
from shoal.api.exec_relay import ExecRelay, Session, exec_relay
from shoal.core.assignment import ExecInput, ExecOutput, TtySize
from shoal.core.enums import InstanceStatus
from shoal.core.errors import FieldError, InvalidArgument, PreconditionFailed, ShoalError
from shoal.store.query import find
from shoal.store.tables import Instance, Service

router = APIRouter(tags=["Instances"])
internal = APIRouter(
    prefix="/internal/v1/exec", dependencies=[Depends(node_agent)], include_in_schema=False
)
FIRST_FRAME_S = 30.0
AGENT_WAIT_S = 10.0  # for the node's agent to join the session
RUNNING = (InstanceStatus.STARTING, InstanceStatus.HEALTHY, InstanceStatus.UNHEALTHY)
# Error frames are google.rpc.Status, as Koyeb's: the gRPC code of each error code.
GRPC_CODES = {
    "invalid_argument": 3,
    "not_found": 5,
    "conflict": 6,
    "authorization_required": 7,
    "failed_precondition": 9,
    "unavailable": 14,
    "authentication_error": 16,
}
GRPC_INTERNAL = 13


class ExecIO(BaseModel):
    data: Base64Bytes = b""
    close: bool = False


class ExecBody(BaseModel):
    command: list[str] = []  # the first frame's is the command; later ones are ignored
    tty_size: TtySize | None = None
    stdin: ExecIO | None = None
    disableTty: bool = False


class ExecCommandRequest(BaseModel):
    id: str = ""
    idType: Literal["INVALID", "INSTANCE_ID", "SERVICE_ID"] = "INVALID"  # INVALID: an instance
    body: ExecBody = Field(default_factory=ExecBody)


class NodeGone(ShoalError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 503, "unavailable")


async def _receive(user: WebSocket) -> ExecCommandRequest:
    """The user's next frame (JSON, in a text or a binary message)."""
    message = await user.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        frame = message.get("text") or message.get("bytes") or ""
        return ExecCommandRequest.model_validate_json(frame)
    except ValidationError as e:
        fields = [FieldError(".".join(map(str, err["loc"])), err["msg"]) for err in e.errors()]
        raise InvalidArgument("Validation error", fields) from None


def _error(e: ShoalError) -> dict[str, Any]:
    message = "; ".join([e.message, *(f"{f.field}: {f.description}" for f in e.fields)])
    return {"error": {"code": GRPC_CODES.get(e.code, GRPC_INTERNAL), "message": message}}


def _result(out: ExecOutput) -> dict[str, Any]:
    result: dict[str, Any] = {"exited": out.exit_code is not None, "exit_code": out.exit_code or 0}
    for name, data in (("stdout", out.stdout), ("stderr", out.stderr)):
        if data:
            result[name] = {"data": base64.b64encode(data).decode()}
    return {"result": result}


def _target(p: Platform, org_id: str, frame: ExecCommandRequest) -> tuple[str, str]:
    """(instance id, node id) of where the command runs."""
    with p.db.read() as s:
        if frame.idType == "SERVICE_ID":
            service = find(s, Service, org_id, frame.id, "service")
            inst = s.scalars(
                select(Instance)
                .where(
                    Instance.service_id == service.id,
                    Instance.status == InstanceStatus.HEALTHY.value,
                )
                .order_by(Instance.created_at.desc())
            ).first()
            if inst is None:
                raise PreconditionFailed("The service has no HEALTHY instance to run commands in")
        else:
            inst = find(s, Instance, org_id, frame.id, "instance")
        if inst.status not in RUNNING or inst.node_id is None:
            raise PreconditionFailed(f"The instance is {inst.status}: nothing runs in it")
        return inst.id, inst.node_id


async def _first_frame(websocket: WebSocket) -> ExecCommandRequest:
    try:
        frame = await asyncio.wait_for(_receive(websocket), FIRST_FRAME_S)
    except TimeoutError:
        raise InvalidArgument("Send the command in the first frame") from None
    missing = [FieldError("id", "must be set")] if not frame.id else []
    if not frame.body.command:
        missing.append(FieldError("body.command", "must be set in the first frame"))
    if missing:
        raise InvalidArgument("Validation error", missing)
    return frame


async def _join(session: Session) -> WebSocket:
    try:
        return await asyncio.wait_for(session.agent, AGENT_WAIT_S)
    except TimeoutError:
        raise NodeGone("The instance's node did not take the command; try again") from None


def _input(body: ExecBody) -> ExecInput | None:
    if body.stdin is None and body.tty_size is None:
        return None
    stdin = body.stdin or ExecIO()
    return ExecInput(stdin=stdin.data, close=stdin.close, tty_size=body.tty_size)


async def _relay(user: WebSocket, agent: WebSocket, first: ExecCommandRequest) -> None:
    """Frames both ways until the command exits or either side goes."""

    async def upstream() -> None:
        frame = first
        while True:
            message = _input(frame.body)
            if message is not None:
                try:
                    await agent.send_text(message.model_dump_json())
                except WebSocketDisconnect:
                    raise NodeGone("The node ended the session") from None
            frame = await _receive(user)

    async def downstream() -> None:
        while True:
            try:
                out = ExecOutput.model_validate_json(await agent.receive_text())
            except WebSocketDisconnect:
                raise NodeGone("The node ended the session before the command exited") from None
            if out.error:
                raise PreconditionFailed(out.error)
            await user.send_json(_result(out))
            if out.exit_code is not None:
                return

    tasks = {asyncio.create_task(upstream()), asyncio.create_task(downstream())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    for task in done:
        task.result()


@router.websocket("/v1/streams/instances/exec")
async def exec_command(
    websocket: WebSocket,
    p: Platform = Depends(platform),
    relay: ExecRelay = Depends(exec_relay),
) -> None:
    """Run a command in an instance: Koyeb's frames, the token as for logs tail."""
    protocols = [x.strip() for x in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    await websocket.accept(subprotocol="Bearer" if "Bearer" in protocols else None)
    session: Session | None = None
    try:
        who = await authenticate_token(p, websocket.headers.get("authorization", ""), protocols)
        first = await _first_frame(websocket)
        instance_id, node_id = await run_in_threadpool(_target, p, who.organization_id, first)
        session = relay.open(node_id, instance_id, first.body.command, not first.body.disableTty)
        p.nodes.notify([node_id])
        await _relay(websocket, await _join(session), first)
    except ShoalError as e:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_json(_error(e))
    except WebSocketDisconnect:
        pass  # the user went: the session ends
    finally:
        if session is not None:
            relay.close(session)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close()


@internal.websocket("/{session_id}")
async def agent_joins(
    websocket: WebSocket, session_id: str, relay: ExecRelay = Depends(exec_relay)
) -> None:
    """The agent's end of a session, held open until the session is over."""
    await websocket.accept()
    session = relay.join(session_id, websocket)
    if session is not None:
        await session.done.wait()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close()
