"""The buildpack builder's decisions: detection, install steps, caching, env, process, refusals."""

from __future__ import annotations

import json

import pytest

from shoal.core.buildpacks import (
    COMPILE_COMMAND,
    COMPILE_PYTHON,
    NO_BUILDPACK,
    STATIC_SERVER,
    BuildRefused,
    Language,
    Plan,
    Source,
    Step,
    parse_procfile,
    plan,
)
from shoal.core.enums import ServiceType
from shoal.core.process import DEFAULT_PATH

VENV = "/workspace/.venv"
PY_ENV = {
    "PATH": f"{VENV}/bin:{DEFAULT_PATH}",
    "VIRTUAL_ENV": VENV,
    "PYTHONUNBUFFERED": "1",
    "PIP_CACHE_DIR": "/cache/pip",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
NODE_ENV = {
    "PATH": f"/workspace/node_modules/.bin:{DEFAULT_PATH}",
    "NODE_ENV": "production",
    "npm_config_cache": "/cache/npm",
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
}
WEB_PROCFILE = "web: gunicorn app:app --bind 0.0.0.0:$PORT\n"

COMPILE = Step(COMPILE_PYTHON, COMPILE_COMMAND)


def source(*files: str, procfile: str | None = None, package: object = None) -> Source:
    names = set(files)
    if procfile is not None:
        names.add("Procfile")
    text = None
    if package is not None:
        names.add("package.json")
        text = package if isinstance(package, str) else json.dumps(package)
    return Source(files=frozenset(names), procfile=procfile, package_json=text)


def build(
    src: Source,
    service_type: str = "WEB",
    build_command: str | None = None,
    run_command: str | None = None,
) -> Plan:
    return plan(src, service_type, build_command, run_command)


def refusal(
    src: Source,
    service_type: str = "WEB",
    build_command: str | None = None,
    run_command: str | None = None,
) -> str:
    with pytest.raises(BuildRefused) as e:
        plan(src, service_type, build_command, run_command)
    return str(e.value)


# Detection


@pytest.mark.parametrize(
    ("files", "package", "language"),
    [
        (("requirements.txt",), None, Language.PYTHON),
        (("pyproject.toml",), None, Language.PYTHON),
        (("requirements.txt", "index.html"), {"scripts": {"start": "x"}}, Language.PYTHON),
        (("pyproject.toml", "index.html"), {"scripts": {"start": "x"}}, Language.PYTHON),
        (("index.html",), {"scripts": {"start": "x"}}, Language.NODE),
        ((), {"scripts": {"start": "x"}}, Language.NODE),
        (("index.html", "style.css"), None, Language.STATIC),
    ],
)
def test_detection_order_python_then_node_then_static(files, package, language):
    p = build(source(*files, procfile="web: run", package=package))
    assert p.language == language
    assert p.language == language.value  # a plain string on the wire and in logs


@pytest.mark.parametrize(
    "files",
    [(), ("README.md",), ("Pipfile", "main.go"), ("uv.lock",), ("poetry.lock",), ("yarn.lock",)],
)
def test_nothing_detected_is_refused_with_what_to_add(files):
    message = refusal(source(*files, procfile="web: run"), run_command="run")
    assert message == NO_BUILDPACK
    for hint in ("requirements.txt", "pyproject.toml", "package.json", "index.html"):
        assert hint in message


def test_the_refusal_is_a_value_error():
    with pytest.raises(ValueError):
        build(source("README.md"))


@pytest.mark.parametrize("service_type", ["DATABASE", "SANDBOX", "web", ""])
def test_only_web_and_worker_services_are_built(service_type):
    message = refusal(source("index.html"), service_type=service_type)
    assert "WEB and WORKER" in message
    assert repr(service_type) in message


def test_service_type_enum_members_are_accepted():
    assert build(source("index.html"), ServiceType.WEB).run_command == STATIC_SERVER
    worker = build(source("index.html", procfile="worker: ./loop.sh"), ServiceType.WORKER)
    assert worker.run_command == "./loop.sh"


# Python


def test_python_requirements():
    p = build(source("requirements.txt", procfile=WEB_PROCFILE))
    assert p.steps == (
        Step(
            name="python: install dependencies",
            command=(
                "python3 -m venv /workspace/.venv"
                " && /workspace/.venv/bin/pip install -r requirements.txt"
            ),
            cache_key_files=("requirements.txt",),
            reuse=(".venv",),
        ),
        COMPILE,
    )
    assert dict(p.env) == PY_ENV
    assert p.run_command == "gunicorn app:app --bind 0.0.0.0:$PORT"


def test_python_compiles_the_apps_own_modules_not_the_venvs():
    p = build(source("requirements.txt", procfile="web: x"))
    assert p.steps[-1] == COMPILE
    assert "compileall" in COMPILE.command and ".venv" in COMPILE.command
    assert COMPILE.cache_key_files == () and COMPILE.reuse == ()  # the app's code changes


def test_python_requirements_win_over_lock_files():
    p = build(
        source("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock", procfile="web: x")
    )
    assert p.steps[0].command.endswith("pip install -r requirements.txt")
    assert p.steps[0].cache_key_files == ("requirements.txt",)
    assert dict(p.env) == PY_ENV


def test_python_uv_lock():
    p = build(source("pyproject.toml", "uv.lock", "poetry.lock", procfile="web: x"))
    step, compiled = p.steps
    assert compiled == COMPILE
    assert step.name == "python: install dependencies"
    assert step.command.split(" && ") == [
        "python3 -m venv /workspace/.venv",
        "python3 -m venv /tmp/shoal-uv",
        "/tmp/shoal-uv/bin/pip install uv",
        "/tmp/shoal-uv/bin/uv sync --locked --no-default-groups --inexact --compile-bytecode",
    ]
    assert step.cache_key_files == ("pyproject.toml", "uv.lock")
    assert step.reuse == (".venv",)
    assert dict(p.env) == {
        **PY_ENV,
        "UV_CACHE_DIR": "/cache/uv",
        "UV_PROJECT_ENVIRONMENT": VENV,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }


def test_python_poetry_lock():
    p = build(source("pyproject.toml", "poetry.lock", procfile="web: x"))
    step, compiled = p.steps
    assert compiled == COMPILE
    assert step.command.split(" && ") == [
        "python3 -m venv /workspace/.venv",
        "python3 -m venv /tmp/shoal-poetry",
        "/tmp/shoal-poetry/bin/pip install poetry",
        "/tmp/shoal-poetry/bin/poetry install --only main --no-interaction --no-ansi",
    ]
    assert step.cache_key_files == ("pyproject.toml", "poetry.lock")
    assert step.reuse == (".venv",)
    assert dict(p.env) == {
        **PY_ENV,
        "POETRY_CACHE_DIR": "/cache/poetry",
        "POETRY_NO_INTERACTION": "1",
        "POETRY_VIRTUALENVS_CREATE": "false",
    }


def test_python_plain_pyproject_installs_the_project_and_is_not_cached():
    p = build(source("pyproject.toml", procfile="web: x"))
    assert p.steps == (
        Step(
            "python: install dependencies",
            "python3 -m venv /workspace/.venv && /workspace/.venv/bin/pip install .",
        ),
        COMPILE,
    )
    assert dict(p.env) == PY_ENV


def test_python_tools_never_go_into_the_app_venv():
    for files in (("pyproject.toml", "uv.lock"), ("pyproject.toml", "poetry.lock")):
        command = build(source(*files, procfile="web: x")).steps[0].command
        assert f"{VENV}/bin/pip install" not in command


@pytest.mark.parametrize("service_type", ["WEB", "WORKER"])
def test_python_has_no_default_process(service_type):
    message = refusal(source("requirements.txt", "index.html", "app.py"), service_type)
    process = service_type.lower()
    assert message == (
        "No run command: set the service's run command (buildpack.run_command) "
        f"or add a Procfile with a `{process}:` process"
    )


def test_pip_never_asks_and_uses_the_cache():
    env = dict(build(source("requirements.txt", procfile="web: x")).env)
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert env["PIP_CACHE_DIR"] == "/cache/pip"
    assert env["PATH"].split(":")[0] == "/workspace/.venv/bin"
    assert env["PATH"].endswith(DEFAULT_PATH)


# Node.js


def test_node_npm_ci_with_package_lock():
    p = build(source("package-lock.json", package={"scripts": {"start": "node app.js"}}))
    assert p.steps == (
        Step(
            "node: install dependencies",
            "npm ci --include=dev",
            cache_key_files=("package.json", "package-lock.json"),
            reuse=("node_modules",),
        ),
        Step("node: build", "npm run build --if-present"),
    )
    assert dict(p.env) == NODE_ENV
    assert p.run_command == "npm start"


def test_node_npm_ci_with_a_shrinkwrap():
    p = build(source("npm-shrinkwrap.json", package={"main": "a.js"}))
    assert p.steps[0].command == "npm ci --include=dev"
    assert p.steps[0].cache_key_files == ("package.json", "npm-shrinkwrap.json")


def test_node_npm_install_without_a_lock_file():
    p = build(source(package={"main": "a.js"}))
    assert p.steps[0] == Step(
        "node: install dependencies",
        "npm install --include=dev",
        cache_key_files=("package.json",),
        reuse=("node_modules",),
    )
    assert p.steps[1] == Step("node: build", "npm run build --if-present")
    assert dict(p.env) == NODE_ENV


def test_node_yarn_classic():
    p = build(source("yarn.lock", package={"main": "a.js"}))
    assert p.steps[0] == Step(
        "node: install dependencies",
        "npx --yes yarn@1 install --frozen-lockfile --production=false",
        cache_key_files=("package.json", "yarn.lock"),
        reuse=("node_modules",),
    )
    assert p.steps[1].command == "npm run build --if-present"
    assert dict(p.env) == {**NODE_ENV, "YARN_CACHE_FOLDER": "/cache/yarn"}


def test_node_yarn_version_from_package_manager():
    package = {"main": "a.js", "packageManager": "yarn@1.22.22+sha512.a6b2f7906b721bba3d67"}
    p = build(source("yarn.lock", package=package))
    assert p.steps[0].command.startswith("npx --yes yarn@1.22.22 install ")


@pytest.mark.parametrize(
    ("files", "package_manager"),
    [
        (("yarn.lock", ".yarnrc.yml"), None),
        (("yarn.lock",), "yarn@4.5.1"),
        (("yarn.lock",), "yarn@2"),
    ],
)
def test_node_yarn_berry_is_refused(files, package_manager):
    package = {"main": "a.js"}
    if package_manager:
        package["packageManager"] = package_manager
    message = refusal(source(*files, package=package))
    assert "Yarn 2 or later" in message
    assert "Yarn 1, npm (package-lock.json) or pnpm (pnpm-lock.yaml)" in message


def test_node_pnpm():
    p = build(source("pnpm-lock.yaml", package={"main": "a.js"}))
    assert p.steps[0] == Step(
        "node: install dependencies",
        "npx --yes pnpm install --frozen-lockfile --prod=false",
        cache_key_files=("package.json", "pnpm-lock.yaml"),
        reuse=("node_modules",),
    )
    assert dict(p.env) == {**NODE_ENV, "npm_config_store_dir": "/cache/pnpm"}


def test_node_pnpm_version_from_package_manager():
    package = {"main": "a.js", "packageManager": "pnpm@9.12.3+sha512.cce0f9de9c5a7c95bef944"}
    p = build(source("pnpm-lock.yaml", package=package))
    assert p.steps[0].command == "npx --yes pnpm@9.12.3 install --frozen-lockfile --prod=false"


@pytest.mark.parametrize(
    "package_manager",
    [
        "pnpm@9; rm -rf /",
        "pnpm@$(reboot)",
        "pnpm@latest",
        "pnpm@9.0.0 extra",
        "yarn@9.0.0",  # another manager than the lock file's
        "npm@10.8.0",
        42,
    ],
)
def test_node_package_manager_never_reaches_the_shell_unchecked(package_manager):
    package = {"main": "a.js", "packageManager": package_manager}
    p = build(source("pnpm-lock.yaml", package=package))
    assert p.steps[0].command == "npx --yes pnpm install --frozen-lockfile --prod=false"


def test_node_lock_file_precedence_npm_then_yarn_then_pnpm():
    package = {"main": "a.js"}
    all_locks = ("package-lock.json", "yarn.lock", "pnpm-lock.yaml")
    assert build(source(*all_locks, package=package)).steps[0].command == "npm ci --include=dev"
    yarn_pnpm = build(source("yarn.lock", "pnpm-lock.yaml", package=package))
    assert "yarn@1" in yarn_pnpm.steps[0].command


def test_node_npmrc_is_part_of_the_cache_key():
    p = build(source("package-lock.json", ".npmrc", package={"main": "a.js"}))
    assert p.steps[0].cache_key_files == ("package.json", "package-lock.json", ".npmrc")


def test_node_installs_dev_dependencies_for_the_build_although_node_env_is_production():
    for lock, flag in [
        ("package-lock.json", "--include=dev"),
        ("yarn.lock", "--production=false"),
        ("pnpm-lock.yaml", "--prod=false"),
        ("", "--include=dev"),
    ]:
        p = build(source(*filter(None, [lock]), package={"main": "a.js"}))
        assert flag in p.steps[0].command
        assert dict(p.env)["NODE_ENV"] == "production"


@pytest.mark.parametrize(
    ("files", "package", "run"),
    [
        ((), {"scripts": {"start": "node app.js"}, "main": "lib.js"}, "npm start"),
        (("server.js",), {"scripts": {"start": "node app.js"}}, "npm start"),
        (("server.js",), {"main": "lib.js"}, "node server.js"),
        ((), {"main": "dist/index.js"}, "node dist/index.js"),
        ((), {"main": "my app.js"}, "node 'my app.js'"),
        ((), {"main": "$(reboot).js"}, "node '$(reboot).js'"),
        ((), {"scripts": {"start": "  "}, "main": "lib.js"}, "node lib.js"),
        ((), {"scripts": {"build": "tsc"}, "main": "lib.js"}, "node lib.js"),
        ((), {"scripts": ["start"], "main": "lib.js"}, "node lib.js"),
    ],
)
def test_node_default_process(files, package, run):
    assert build(source(*files, package=package)).run_command == run


def test_node_default_process_also_runs_a_worker():
    p = build(source(package={"scripts": {"start": "node queue.js"}}), "WORKER")
    assert p.run_command == "npm start"


@pytest.mark.parametrize("package", [{}, {"main": ""}, {"main": 3}, {"scripts": {"test": "x"}}])
@pytest.mark.parametrize("service_type", ["WEB", "WORKER"])
def test_node_without_any_process_is_refused(package, service_type):
    message = refusal(source("index.html", package=package), service_type)
    process = service_type.lower()
    assert message == (
        "No run command: set the service's run command (buildpack.run_command), "
        f"add a Procfile with a `{process}:` process or add a `start` script to package.json"
    )


def test_node_package_json_text_missing_counts_as_empty():
    src = Source(files=frozenset({"package.json"}), procfile=None, package_json=None)
    assert "start" in refusal(src)
    assert build(src, run_command="node x.js").run_command == "node x.js"


@pytest.mark.parametrize("text", ["{", "{'a': 1}", ""])
def test_node_invalid_package_json_is_refused(text):
    assert refusal(source(package=text), run_command="x").startswith(
        "package.json is not valid JSON: "
    )


@pytest.mark.parametrize("text", ["[]", '"x"', "3", "null"])
def test_node_package_json_must_be_an_object(text):
    assert refusal(source(package=text), run_command="x") == "package.json must hold a JSON object"


# Static sites


def test_static_site_is_served_on_port():
    p = build(source("index.html", "app.css"))
    assert p.language == "static"
    assert p.steps == ()
    assert p.env == ()
    assert p.run_command == STATIC_SERVER
    assert STATIC_SERVER == (
        'python3 -m http.server "${PORT:-8000}" --bind 0.0.0.0 --directory /workspace'
    )


def test_static_site_with_a_build_command():
    p = build(source("index.html"), build_command="./generate.sh")
    assert p.steps == (Step("build command", "./generate.sh"),)
    assert p.run_command == STATIC_SERVER


def test_static_site_worker_is_refused():
    message = refusal(source("index.html", procfile="web: ./serve"), "WORKER")
    assert message == (
        "A static site (index.html) can only be served by a WEB service: deploy it as a web "
        "service, or set the service's run command (buildpack.run_command) or add a Procfile "
        "with a `worker:` process"
    )


def test_static_site_worker_with_its_own_process_is_built():
    assert build(source("index.html"), "WORKER", run_command="./poll.sh").run_command == (
        "./poll.sh"
    )
    p = build(source("index.html", procfile="worker: ./poll.sh"), "WORKER")
    assert p.run_command == "./poll.sh"


# The process: run command > Procfile > language default


PROCFILE = "web: ./web.sh\nworker: ./worker.sh\n"


@pytest.mark.parametrize(
    ("src", "default"),
    [
        (source("requirements.txt", procfile=PROCFILE), None),
        (source(procfile=PROCFILE, package={"scripts": {"start": "x"}}), "npm start"),
        (source("index.html", procfile=PROCFILE), STATIC_SERVER),
    ],
)
def test_run_command_precedence(src, default):
    assert build(src, "WEB", run_command="./explicit.sh").run_command == "./explicit.sh"
    assert build(src, "WORKER", run_command="./explicit.sh").run_command == "./explicit.sh"
    assert build(src, "WEB").run_command == "./web.sh"
    assert build(src, "WORKER").run_command == "./worker.sh"
    without_procfile = Source(src.files - {"Procfile"}, None, src.package_json)
    if default is None:
        refusal(without_procfile)
    else:
        assert build(without_procfile).run_command == default


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_blank_commands_count_as_unset(blank):
    p = build(
        source("index.html", procfile="web: ./web.sh"), build_command=blank, run_command=blank
    )
    assert p.run_command == "./web.sh"
    assert p.steps == ()


def test_web_uses_web_and_worker_uses_worker():
    src = source("requirements.txt", procfile="web: ./web.sh\n")
    assert build(src, "WEB").run_command == "./web.sh"
    assert "`worker:`" in refusal(src, "WORKER")
    src = source("requirements.txt", procfile="worker: ./worker.sh\n")
    assert build(src, "WORKER").run_command == "./worker.sh"
    assert "`web:`" in refusal(src, "WEB")


def test_procfile_text_missing_means_no_procfile():
    src = Source(files=frozenset({"requirements.txt", "Procfile"}), procfile=None)
    assert refusal(src).startswith("No run command")


def test_node_procfile_beats_the_start_script():
    p = build(source(package={"scripts": {"start": "x"}}, procfile="web: node cluster.js"))
    assert p.run_command == "node cluster.js"


# Build command


@pytest.mark.parametrize(
    ("files", "package", "before"),
    [
        (("requirements.txt",), None, ["python: install dependencies", "python: compile"]),
        ((), {"main": "a.js"}, ["node: install dependencies", "node: build"]),
        (("index.html",), None, []),
    ],
)
def test_build_command_runs_last(files, package, before):
    p = build(
        source(*files, package=package, procfile="web: x"),
        build_command="python manage.py collectstatic --noinput",
    )
    assert [s.name for s in p.steps] == [*before, "build command"]
    assert p.steps[-1] == Step("build command", "python manage.py collectstatic --noinput")
    assert p.steps[-1].cache_key_files == ()
    assert p.steps[-1].reuse == ()


def test_no_build_command_no_extra_step():
    p = build(source("requirements.txt", procfile="web: x"))
    assert [s.name for s in p.steps] == ["python: install dependencies", "python: compile"]


# Caching and env, across languages


def test_only_install_steps_are_cacheable_and_reuse_what_they_produce():
    cases = [
        (source("requirements.txt", procfile="web: x"), ".venv"),
        (source("pyproject.toml", "uv.lock", procfile="web: x"), ".venv"),
        (source("pyproject.toml", "poetry.lock", procfile="web: x"), ".venv"),
        (source("package-lock.json", package={"main": "a.js"}), "node_modules"),
        (source("yarn.lock", package={"main": "a.js"}), "node_modules"),
        (source("pnpm-lock.yaml", package={"main": "a.js"}), "node_modules"),
    ]
    for src, produced in cases:
        steps = build(src, build_command="make").steps
        assert steps[0].reuse == (produced,)
        assert steps[0].cache_key_files
        assert set(steps[0].cache_key_files) <= src.files
        for step in steps[1:]:
            assert step.cache_key_files == ()
            assert step.reuse == ()


def test_env_has_no_duplicate_keys():
    for src in [
        source("requirements.txt", procfile="web: x"),
        source("pyproject.toml", "uv.lock", procfile="web: x"),
        source("pyproject.toml", "poetry.lock", procfile="web: x"),
        source("yarn.lock", package={"main": "a.js"}),
        source("pnpm-lock.yaml", package={"main": "a.js"}),
    ]:
        keys = [k for k, _ in build(src).env]
        assert len(keys) == len(set(keys))


def test_multi_command_steps_stop_at_the_first_failure():
    # Each command of a step is chained with &&, so `sh -c` fails as soon as one fails.
    for src in [
        source("requirements.txt", procfile="web: x"),
        source("pyproject.toml", "uv.lock", procfile="web: x"),
        source("pyproject.toml", "poetry.lock", procfile="web: x"),
        source("pyproject.toml", procfile="web: x"),
    ]:
        command = build(src).steps[0].command
        assert ";" not in command
        assert "\n" not in command
        assert command.count(" && ") >= 1


def test_plan_is_frozen():
    p = build(source("index.html"))
    with pytest.raises(AttributeError):
        p.run_command = "x"  # type: ignore[misc]


# Procfile parsing


def test_parse_procfile():
    text = """\
# processes
web: gunicorn app:app --bind 0.0.0.0:$PORT --log-level info

worker:   celery -A app worker   
  release: python manage.py migrate
web_2:python b.py
clock-1: python clock.py # not a comment: part of the command
"""
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT --log-level info",
        "worker": "celery -A app worker",
        "release": "python manage.py migrate",
        "web_2": "python b.py",
        "clock-1": "python clock.py # not a comment: part of the command",
    }


def test_parse_procfile_later_duplicates_win():
    assert parse_procfile("web: a\nweb: b\n") == {"web": "b"}


def test_parse_procfile_crlf_and_no_trailing_newline():
    assert parse_procfile("web: a\r\nworker: b") == {"web": "a", "worker": "b"}


@pytest.mark.parametrize(
    "line",
    [
        "no colon here",
        ": no name",
        "web:",
        "web:    ",
        "two words: x",
        "we.b: x",
        "#web: commented out",
        "   # indented comment: x",
        "",
    ],
)
def test_parse_procfile_skips_malformed_lines(line):
    assert parse_procfile(f"{line}\nworker: ok\n") == {"worker": "ok"}


def test_parse_procfile_empty():
    assert parse_procfile("") == {}
    assert parse_procfile("\n\n# only comments\n") == {}


def test_malformed_procfile_web_line_does_not_win_over_an_earlier_good_one():
    assert parse_procfile("web: good\nweb:\n") == {"web": "good"}
