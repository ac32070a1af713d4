"""Carrying out one health check: a TCP connect or an HTTP request (2xx/3xx is healthy)."""

from __future__ import annotations

import asyncio
import os

import httpx

from shoal.core.definition import HealthCheck


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()  # "no route to host", ...
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _reason(cause)
    return str(exc) or type(exc).__name__


async def probe(check: HealthCheck, host: str, client: httpx.AsyncClient) -> tuple[bool, str]:
    """(passed, why not) for `check` against `host`."""
    timeout = float(check.timeout or 5)
    try:
        if check.tcp is not None:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, check.tcp.port), timeout
            )
            writer.close()
            await writer.wait_closed()
            return True, ""
        assert check.http is not None
        url = f"http://{host}:{check.http.port}{check.http.path or '/'}"
        headers = {h.key or "": h.value or "" for h in check.http.headers or []}
        r = await client.request(check.http.method or "GET", url, headers=headers, timeout=timeout)
        if 200 <= r.status_code < 400:
            return True, ""
        return False, f"HTTP {r.status_code}"
    except (OSError, TimeoutError, httpx.HTTPError) as e:
        return False, _reason(e)


def describe_failure(check: HealthCheck, reason: str) -> str:
    """The message users see: 'Health check on port 8000 failed: connection refused'."""
    port = check.tcp.port if check.tcp else check.http.port if check.http else None
    kind = "HTTP health check" if check.http else "Health check"
    return f"{kind} on port {port} failed: {reason}"
