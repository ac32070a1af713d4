"""The buildpack builder's decisions (pure): how to build and start a repository checkout.

The caller looks at the checkout (the files at the top of the workdir, the Procfile's and
package.json's text) and passes the facts in; `plan` returns the build steps, each a POSIX `sh -c`
line run in /workspace, and the process to start. A `BuildRefused` message is shown to the user
as the deployment's error, so it always says what to add.

Detection, first match wins:

- Python: requirements.txt or pyproject.toml. Dependencies go to a virtualenv at
  /workspace/.venv, whose bin/ comes first on PATH. The installer, first match wins:
  requirements.txt → `pip install -r requirements.txt`; pyproject.toml with uv.lock →
  `uv sync --locked`; pyproject.toml with poetry.lock → `poetry install --only main`; pyproject.toml
  alone → `pip install .`. uv and Poetry honour the lock file (that is what it is for, and what
  Heroku does); they are installed from PyPI into a throwaway venv under /tmp, never into the
  app's venv, where their own dependencies could clash with the app's. `--locked` refuses a lock
  file that does not match pyproject.toml rather than silently installing something else.
  Python has no default process: without a Procfile or a run command the build is refused.
- Node.js: package.json. `npm ci` with package-lock.json (or npm-shrinkwrap.json), Yarn 1 with
  yarn.lock, pnpm with pnpm-lock.yaml, `npm install` without a lock file; the exact Yarn or pnpm
  version comes from package.json's `packageManager` when it names one. Yarn 2+ ("Berry",
  .yarnrc.yml) is refused: it comes from neither npm nor npx and installs without node_modules
  by default. devDependencies are installed although NODE_ENV is production (as on Heroku):
  `npm run build --if-present`, which follows, usually needs them. Default process:
  `npm start` for a `start` script, else `node server.js` when there is a server.js (what
  `npm start` would run), else `node <main>`.
- Static site: index.html. No install step; Python's http.server serves /workspace on $PORT
  (the node stack has python3). Only a WEB service gets that default.

The process: the service's run command, else the Procfile's `web:` (WEB) or `worker:` (WORKER)
entry, else the language's default. The build command, when set, runs after the buildpack's
steps. An empty or blank command counts as unset (Koyeb's wire format cannot tell them apart).

Caching: a step with `cache_key_files` may be skipped when those files' contents (and the
step's command, and the build image) are the same as in the previous build, provided the caller
restores the step's `reuse` paths from that build. The plain pyproject.toml install is never
cached: `pip install .` copies the app's own code into the venv, which a reused venv would keep
stale. uv and Poetry install the project editable, so a reused venv sees the new code.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from shoal.core.enums import ServiceType
from shoal.core.process import DEFAULT_PATH

WORKSPACE = "/workspace"
VENV = f"{WORKSPACE}/.venv"
CACHE = "/cache"

# What pip installs to get the lock-file tools; pin them here to make builds reproducible.
UV_REQUIREMENT = "uv"
POETRY_REQUIREMENT = "poetry"
UV_TOOL = "/tmp/shoal-uv"
POETRY_TOOL = "/tmp/shoal-poetry"

STATIC_SERVER = f'python3 -m http.server "${{PORT:-8000}}" --bind 0.0.0.0 --directory {WORKSPACE}'

INSTALL_PYTHON = "python: install dependencies"
COMPILE_PYTHON = "python: compile"
# Byte-compiles the app's own modules (not the venv's): a syntax error fails the build, with
# the error in its output, instead of the app at start; and the app starts faster.
COMPILE_COMMAND = f"{VENV}/bin/python -m compileall -q -x '(^|/)(\\.venv|node_modules)/' ."
INSTALL_NODE = "node: install dependencies"
BUILD_NODE = "node: build"
BUILD_COMMAND = "build command"

NO_BUILDPACK = (
    "No buildpack detected: add a requirements.txt or pyproject.toml (Python), "
    "a package.json (Node.js) or an index.html (static site)"
)

_PROCFILE_LINE = re.compile(r"([A-Za-z0-9_-]+)\s*:(.*)")
# `packageManager` goes into a shell command: only plain versions, the "+sha..." suffix dropped.
_PACKAGE_MANAGER = re.compile(
    r"(npm|yarn|pnpm)@(\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?)(?:\+[0-9A-Za-z.]+)?"
)
_NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")


class BuildRefused(ValueError):
    """The checkout cannot be built by the buildpack builder; the message tells the user why."""


class Language(StrEnum):
    PYTHON = "python"
    NODE = "node"
    STATIC = "static"


@dataclass(frozen=True)
class Source:
    """What the caller found at the top of the checkout's workdir."""

    files: frozenset[str]  # relative paths of the top-level files
    procfile: str | None = None  # the Procfile's text, if any
    package_json: str | None = None  # package.json's text, if any


@dataclass(frozen=True)
class Step:
    name: str  # shown in build logs and provisioning stages
    command: str  # a POSIX sh line run in /workspace; it fails when any of its commands fails
    cache_key_files: tuple[str, ...] = ()  # whose contents decide whether `reuse` is reusable
    reuse: tuple[str, ...] = ()  # paths under /workspace the step produces


@dataclass(frozen=True)
class Plan:
    language: Language
    steps: tuple[Step, ...]
    run_command: str  # started with `sh -c` in /workspace
    env: tuple[tuple[str, str], ...]  # for the build steps and the process


def plan(
    source: Source, service_type: str, build_command: str | None, run_command: str | None
) -> Plan:
    """How to build `source` and start it as a `service_type` ("WEB" or "WORKER") service."""
    process = _process_type(service_type)
    language = _detect(source.files)
    default: str | None
    if language is Language.PYTHON:
        steps, env = _python(source.files)
        default = None
    elif language is Language.NODE:
        package = _package_json(source.package_json)
        steps, env = _node(source.files, package)
        default = _node_default(source.files, package)
    else:
        steps, env = (), ()
        default = STATIC_SERVER if process == "web" else None
    build = _given(build_command)
    if build is not None:
        steps = (*steps, Step(BUILD_COMMAND, build))
    procfile = parse_procfile(source.procfile) if source.procfile is not None else {}
    command = _given(run_command) or procfile.get(process) or default
    if command is None:
        raise BuildRefused(_no_run_command(language, process))
    return Plan(language=language, steps=steps, run_command=command, env=env)


def parse_procfile(text: str) -> dict[str, str]:
    """A Procfile's `name: command` entries; comments, blank and malformed lines are skipped."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PROCFILE_LINE.fullmatch(line)
        if match is None:
            continue
        command = match.group(2).strip()
        if command:
            entries[match.group(1)] = command  # a later entry for the same name wins
    return entries


def _process_type(service_type: str) -> str:
    try:
        return ServiceType(service_type).value.lower()
    except ValueError:
        raise BuildRefused(
            f"The buildpack builder builds WEB and WORKER services, not {service_type!r}"
        ) from None


def _detect(files: frozenset[str]) -> Language:
    if "requirements.txt" in files or "pyproject.toml" in files:
        return Language.PYTHON
    if "package.json" in files:
        return Language.NODE
    if "index.html" in files:
        return Language.STATIC
    raise BuildRefused(NO_BUILDPACK)


def _given(command: str | None) -> str | None:
    return command if command is not None and command.strip() else None


def _no_run_command(language: Language, process: str) -> str:
    set_it = "set the service's run command (buildpack.run_command)"
    procfile = f"a Procfile with a `{process}:` process"
    if language is Language.STATIC:
        return (
            "A static site (index.html) can only be served by a WEB service: deploy it as a "
            f"web service, or {set_it} or add {procfile}"
        )
    if language is Language.NODE:
        return f"No run command: {set_it}, add {procfile} or add a `start` script to package.json"
    return f"No run command: {set_it} or add {procfile}"


def _steps(*commands: str) -> str:
    """One shell line that stops at the first failing command."""
    return " && ".join(commands)


# Python


def _python(files: frozenset[str]) -> tuple[tuple[Step, ...], tuple[tuple[str, str], ...]]:
    venv = f"python3 -m venv {VENV}"
    env = [
        ("PATH", f"{VENV}/bin:{DEFAULT_PATH}"),
        ("VIRTUAL_ENV", VENV),
        ("PYTHONUNBUFFERED", "1"),
        ("PIP_CACHE_DIR", f"{CACHE}/pip"),
        ("PIP_NO_INPUT", "1"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ]
    if "requirements.txt" in files:
        step = Step(
            INSTALL_PYTHON,
            _steps(venv, f"{VENV}/bin/pip install -r requirements.txt"),
            cache_key_files=("requirements.txt",),
            reuse=(".venv",),
        )
    elif "uv.lock" in files:
        # --inexact keeps the venv's pip, for build commands that want it.
        step = Step(
            INSTALL_PYTHON,
            _steps(
                venv,
                f"python3 -m venv {UV_TOOL}",
                f"{UV_TOOL}/bin/pip install {UV_REQUIREMENT}",
                f"{UV_TOOL}/bin/uv sync --locked --no-default-groups --inexact --compile-bytecode",
            ),
            cache_key_files=("pyproject.toml", "uv.lock"),
            reuse=(".venv",),
        )
        env += [
            ("UV_CACHE_DIR", f"{CACHE}/uv"),
            ("UV_PROJECT_ENVIRONMENT", VENV),
            ("UV_PYTHON_DOWNLOADS", "never"),  # the stack's python3, or a clear error
            ("UV_LINK_MODE", "copy"),  # the cache is on another file system
        ]
    elif "poetry.lock" in files:
        # Poetry installs into the active virtualenv (VIRTUAL_ENV) and never creates one.
        step = Step(
            INSTALL_PYTHON,
            _steps(
                venv,
                f"python3 -m venv {POETRY_TOOL}",
                f"{POETRY_TOOL}/bin/pip install {POETRY_REQUIREMENT}",
                f"{POETRY_TOOL}/bin/poetry install --only main --no-interaction --no-ansi",
            ),
            cache_key_files=("pyproject.toml", "poetry.lock"),
            reuse=(".venv",),
        )
        env += [
            ("POETRY_CACHE_DIR", f"{CACHE}/poetry"),
            ("POETRY_NO_INTERACTION", "1"),
            ("POETRY_VIRTUALENVS_CREATE", "false"),
        ]
    else:
        # Not cached: `pip install .` copies the app's code into the venv (see the module doc).
        step = Step(INSTALL_PYTHON, _steps(venv, f"{VENV}/bin/pip install ."))
    return (step, Step(COMPILE_PYTHON, COMPILE_COMMAND)), tuple(env)


# Node.js


def _package_json(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        package = json.loads(text)
    except ValueError as e:
        raise BuildRefused(f"package.json is not valid JSON: {e}") from None
    if not isinstance(package, dict):
        raise BuildRefused("package.json must hold a JSON object")
    return package


def _package_manager(package: dict[str, Any]) -> tuple[str, str] | None:
    """package.json's `packageManager` as (name, version), when it is one we can run."""
    value = package.get("packageManager")
    if not isinstance(value, str):
        return None
    match = _PACKAGE_MANAGER.fullmatch(value.strip())
    return (match.group(1), match.group(2)) if match else None


def _node(
    files: frozenset[str], package: dict[str, Any]
) -> tuple[tuple[Step, ...], tuple[tuple[str, str], ...]]:
    manager = _package_manager(package)
    env = [
        ("PATH", f"{WORKSPACE}/node_modules/.bin:{DEFAULT_PATH}"),
        ("NODE_ENV", "production"),
        ("npm_config_cache", f"{CACHE}/npm"),
        ("npm_config_update_notifier", "false"),
        ("npm_config_fund", "false"),
        ("npm_config_audit", "false"),
    ]
    npm_lock = next((lock for lock in _NPM_LOCKS if lock in files), None)
    lock: str | None
    if npm_lock is not None:
        lock, install = npm_lock, "npm ci --include=dev"
    elif "yarn.lock" in files:
        version = manager[1] if manager and manager[0] == "yarn" else "1"
        if ".yarnrc.yml" in files or version.split(".")[0] != "1":
            raise BuildRefused(
                "This project uses Yarn 2 or later, which the buildpack builder does not "
                "support: use Yarn 1, npm (package-lock.json) or pnpm (pnpm-lock.yaml), "
                "or build with a Dockerfile"
            )
        lock = "yarn.lock"
        install = f"npx --yes yarn@{version} install --frozen-lockfile --production=false"
        env.append(("YARN_CACHE_FOLDER", f"{CACHE}/yarn"))
    elif "pnpm-lock.yaml" in files:
        pnpm = f"pnpm@{manager[1]}" if manager and manager[0] == "pnpm" else "pnpm"
        lock = "pnpm-lock.yaml"
        install = f"npx --yes {pnpm} install --frozen-lockfile --prod=false"
        env.append(("npm_config_store_dir", f"{CACHE}/pnpm"))
    else:
        lock, install = None, "npm install --include=dev"
    keys = tuple(f for f in ("package.json", lock, ".npmrc") if f is not None and f in files)
    steps = (
        Step(INSTALL_NODE, install, cache_key_files=keys, reuse=("node_modules",)),
        Step(BUILD_NODE, "npm run build --if-present"),
    )
    return steps, tuple(env)


def _node_default(files: frozenset[str], package: dict[str, Any]) -> str | None:
    scripts = package.get("scripts")
    if isinstance(scripts, dict) and _is_command(scripts.get("start")):
        return "npm start"
    if "server.js" in files:
        return "node server.js"
    main = package.get("main")
    if _is_command(main):
        return f"node {shlex.quote(main.strip())}"
    return None


def _is_command(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())
