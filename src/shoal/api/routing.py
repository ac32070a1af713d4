"""The route class of every router: a request that lost a race is run again.

The control loop writes the rows the API writes (a deployment's status while a new
deployment links to it as its parent...). Rows carry a version, and PostgreSQL breaks
deadlocks: the loser of such a race has nothing written, and is simply run again on fresh
data.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError

from shoal.store.db import lost_a_race

ATTEMPTS = 3


class RetryOnConflict(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def retrying(request: Request) -> Response:
            for _ in range(ATTEMPTS - 1):
                try:
                    return await handler(request)
                except (StaleDataError, OperationalError) as e:
                    if not lost_a_race(e):
                        raise
            return await handler(request)

        return retrying
