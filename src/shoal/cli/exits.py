"""Exit codes scripts can trust, and the one place that turns failures into them."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import typer
import typer.core

from shoal.cli.config import ConfigError
from shoal.cli.output import error
from shoal.cli.wait import WaitFailed, WaitTimedOut
from shoal.client import ApiError, ApiUnreachable


class ExitCode(IntEnum):
    OK = 0
    API_REFUSED = 1
    USAGE = 2  # Click's own code for usage errors; also an unusable config file
    WAIT_FAILED = 3
    WAIT_TIMED_OUT = 4
    UNREACHABLE = 5


EPILOG = (
    "Exit codes: 0 success; 1 the API refused (message and field errors on stderr); "
    "2 usage error; 3 --wait ended in a failure status; 4 --wait timed out; "
    "5 cannot reach the API."
)


# Failures whose message says it all, and their codes (API refusals get their fields too).
_CODES: dict[type[Exception], ExitCode] = {
    ApiUnreachable: ExitCode.UNREACHABLE,
    ConfigError: ExitCode.USAGE,
    WaitFailed: ExitCode.WAIT_FAILED,
    WaitTimedOut: ExitCode.WAIT_TIMED_OUT,
}


class ExitCodeGroup(typer.core.TyperGroup):
    """The root command group: maps client and wait failures to exit codes."""

    # `Any`: the base class takes Typer's vendored click Context, which it does not export.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as e:
            details = [f"{f.field}: {f.description}" for f in e.fields]
            if e.status == 401:
                details.append("log in with `shoal login`, or pass --token / set SHOAL_TOKEN")
            error(f"{e.message} ({e.status} {e.code})", details)
            raise typer.Exit(ExitCode.API_REFUSED) from None
        except tuple(_CODES) as e:
            error(str(e))
            raise typer.Exit(_CODES[type(e)]) from None
