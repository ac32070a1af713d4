"""Git sources end to end: local repositories the test makes, built with buildpacks by the
node agent of a real `shoal up` (sandboxed builds, dependencies from PyPI and npm), run on the
node's stack; failures; deploy on push by polling and by webhook; a hostile build.

The builds download packages from the PyPI and npm registries (the only outside traffic).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Shoal
from tests.e2e.conftest import running_platform
from tests.e2e.test_service_lifecycle import addresses, until
from tests.support.registry import busybox_rootfs

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
BUILD_TIMEOUT_S = 300

PYTHON_APP = """\
import os, http.server, six
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('GREETING', 'hi')} from python, six {six.__version__}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""
NODE_APP = """\
const http = require("http");
const isNumber = require("is-number");
http.createServer((req, res) => res.end(`node says ${isNumber(5)}`)).listen(process.env.PORT);
"""
WORKER = """\
import time
while True:
    print("worker tick", flush=True)
    time.sleep(0.5)
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    """Write `files` into `repo` (made on first use, branch main) and commit them."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def web(name: str, repo: Path, **git_source: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "WEB",
        "git": {"repository": str(repo), "branch": "main", **git_source},
        "ports": [{"port": 8000, "protocol": "http"}],
        "routes": [{"path": "/", "port": 8000}],
        "regions": ["fra"],
        "instance_types": [{"type": "nano"}],
        "scalings": [{"min": 1, "max": 1}],
        "env": [{"key": "GREETING", "value": "hello"}],
    }


@pytest.fixture(scope="module")
def shoal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shoal]:
    data = tmp_path_factory.mktemp("git") / "data"
    yield from running_platform(data, "--git-poll-interval", "1", "--local-git")


def deployment(api: httpx.Client, dep_id: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/deployments/{dep_id}").json()["deployment"])


def settled(api: httpx.Client, dep_id: str) -> dict[str, Any] | None:
    d = deployment(api, dep_id)
    return d if d["status"] in ("HEALTHY", "ERROR", "CANCELED") else None


def wait_settled(api: httpx.Client, dep_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while time.monotonic() < deadline:
        d = settled(api, dep_id)
        if d is not None:
            return d
        time.sleep(0.5)
    raise AssertionError(f"deployment {dep_id} did not settle: {deployment(api, dep_id)}")


def build_log(api: httpx.Client, dep_id: str) -> list[str]:
    data = api.get(
        "/v1/streams/logs/query",
        params={"deployment_id": dep_id, "type": "build", "order": "asc", "limit": 1000},
    ).json()["data"]
    return [line["msg"] for line in data]


def create(api: httpx.Client, app_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/v1/services", json={"app_id": app_id, "definition": definition})
    assert r.status_code == 200, r.text
    return dict(r.json()["service"])


def get_text(shoal: Shoal, dep_id: str) -> str:
    [address] = until("an address", lambda: addresses(shoal, dep_id))
    return httpx.get(f"http://{address}:8000/", timeout=10).text


@pytest.mark.timeout(900)
def test_buildpacks_push_and_failures(shoal: Shoal, tmp_path: Path) -> None:
    api = shoal.client()
    app = api.post("/v1/apps", json={"name": "gitapps"}).json()["app"]

    # A Python app with a dependency from PyPI, started by its Procfile.
    py_repo = tmp_path / "py"
    first_sha = commit(
        py_repo,
        {
            "requirements.txt": "six==1.16.0\n",
            "app.py": PYTHON_APP,
            "Procfile": "web: python app.py\n",
        },
    )
    py = create(api, app["id"], web("py", py_repo))
    built = wait_settled(api, py["latest_deployment_id"])
    assert built["status"] == "HEALTHY", (built["messages"], build_log(api, built["id"]))
    assert built["provisioning_info"]["sha"] == first_sha
    assert built["metadata"]["git"]["git_env"]["sha"] == first_sha
    [stage] = built["provisioning_info"]["stages"]
    assert stage["name"] == "build" and stage["status"] == "COMPLETED"
    assert get_text(shoal, built["id"]) == "hello from python, six 1.16.0"
    log = build_log(api, built["id"])
    assert any("Successfully installed six" in line for line in log), log

    # A Node.js app with a dependency from npm, a static site, a worker from a Procfile.
    node_repo = tmp_path / "node"
    commit(
        node_repo,
        {
            "package.json": json.dumps(
                {
                    "name": "n",
                    "version": "1.0.0",
                    "scripts": {"start": "node server.js"},
                    "dependencies": {"is-number": "7.0.0"},
                }
            ),
            "server.js": NODE_APP,
        },
    )
    site_repo = tmp_path / "site"
    commit(site_repo, {"index.html": "<h1>static</h1>"})
    worker_repo = tmp_path / "worker"
    commit(
        worker_repo,
        {
            "requirements.txt": "",
            "worker.py": WORKER,
            "Procfile": "web: python -m http.server $PORT\nworker: python worker.py\n",
        },
    )
    node = create(api, app["id"], web("node", node_repo))
    site = create(api, app["id"], web("site", site_repo))
    worker_def = {
        "name": "worker",
        "type": "WORKER",
        "git": {"repository": str(worker_repo), "branch": "main"},
        "regions": ["fra"],
        "instance_types": [{"type": "nano"}],
        "scalings": [{"min": 1, "max": 1}],
    }
    worker = create(api, app["id"], worker_def)
    for svc in (node, site, worker):
        d = wait_settled(api, svc["latest_deployment_id"])
        assert d["status"] == "HEALTHY", (svc["name"], d["messages"], build_log(api, d["id"]))
    assert get_text(shoal, node["latest_deployment_id"]) == "node says true"
    assert "<h1>static</h1>" in get_text(shoal, site["latest_deployment_id"])
    runtime = until(
        "the worker's output",
        lambda: [
            line["msg"]
            for line in api.get(
                "/v1/streams/logs/query", params={"service_id": worker["id"]}
            ).json()["data"]
            if line["msg"] == "worker tick"
        ],
    )
    assert runtime

    # Deploy on push, by polling: a new commit on main makes a new deployment of that sha.
    second_sha = commit(py_repo, {"app.py": PYTHON_APP.replace("from python", "from push")})
    pushed_id = until(
        "a deployment of the pushed commit",
        lambda: (
            (d := api.get(f"/v1/services/{py['id']}").json()["service"]["latest_deployment_id"])
            != built["id"]
            and d
        ),
    )
    pushed = wait_settled(api, pushed_id)
    assert pushed["status"] == "HEALTHY", (pushed["messages"], build_log(api, pushed_id))
    assert pushed["provisioning_info"]["sha"] == second_sha
    assert pushed["metadata"]["trigger"]["type"] == "GIT"
    assert get_text(shoal, pushed_id) == "hello from push, six 1.16.0"
    # The unchanged requirements were not installed again.
    assert any("reusing the previous build" in line for line in build_log(api, pushed_id))

    # Redeploy with skip_build: the last build runs again, nothing is built.
    r = api.post(f"/v1/services/{py['id']}/redeploy", json={"skip_build": True})
    assert r.status_code == 200, r.text
    again_id = api.get(f"/v1/services/{py['id']}").json()["service"]["latest_deployment_id"]
    again = wait_settled(api, again_id)
    assert again["status"] == "HEALTHY" and again["provisioning_info"]["sha"] == second_sha
    assert build_log(api, again_id) == []
    assert get_text(shoal, again_id) == "hello from push, six 1.16.0"

    # Deploy on push, by webhook: a bad signature is refused, a good one deploys at once.
    hook = api.get(f"/hooks/v1/git/{site['id']}/secret").json()["webhook"]
    site_sha = commit(site_repo, {"index.html": "<h1>hooked</h1>"})
    payload = json.dumps({"ref": "refs/heads/main", "after": site_sha}).encode()
    bad = httpx.post(
        shoal.url + hook["path"],
        content=payload,
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"},
    )
    assert bad.status_code == 401 and bad.json()["code"] == "authentication_error"
    signature = hmac.new(hook["secret"].encode(), payload, hashlib.sha256).hexdigest()
    good = httpx.post(
        shoal.url + hook["path"],
        content=payload,
        headers={"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Event": "push"},
    )
    assert good.status_code == 200, good.text
    hooked_id = good.json()["deployment_id"] or until(  # the poller may have been first
        "the site's new deployment",
        lambda: (
            (d := api.get(f"/v1/services/{site['id']}").json()["service"]["latest_deployment_id"])
            != site["latest_deployment_id"]
            and d
        ),
    )
    hooked = wait_settled(api, hooked_id)
    assert hooked["status"] == "HEALTHY" and hooked["provisioning_info"]["sha"] == site_sha
    assert "<h1>hooked</h1>" in get_text(shoal, hooked_id)

    # No run command: the build fails with the reason; the previous deployment still answers.
    commit(py_repo, {"Procfile": "# nothing to run\n"}, "drop the Procfile entry")
    api.patch(
        f"/v1/services/{py['id']}", json={"definition": web("py", py_repo, no_deploy_on_push=True)}
    )
    failed_id = api.get(f"/v1/services/{py['id']}").json()["service"]["latest_deployment_id"]
    failed = wait_settled(api, failed_id)
    assert failed["status"] == "ERROR"
    assert any("No run command" in m for m in failed["messages"]), failed["messages"]
    assert failed["provisioning_info"]["stages"][0]["status"] == "FAILED"
    service = api.get(f"/v1/services/{py['id']}").json()["service"]
    assert service["active_deployment_id"] == again_id
    assert get_text(shoal, again_id) == "hello from push, six 1.16.0"

    # A syntax error fails the build (the app's modules are compiled), not the instance.
    commit(py_repo, {"Procfile": "web: python app.py\n", "app.py": "def broken(:\n"}, "oops")
    api.post(f"/v1/services/{py['id']}/redeploy", json={})
    broken_id = api.get(f"/v1/services/{py['id']}").json()["service"]["latest_deployment_id"]
    broken = wait_settled(api, broken_id)
    assert broken["status"] == "ERROR"
    assert any("SyntaxError" in m for m in broken["messages"]), broken["messages"]
    assert api.get(f"/v1/services/{py['id']}").json()["service"]["active_deployment_id"] == again_id
    assert get_text(shoal, again_id) == "hello from push, six 1.16.0"


@pytest.mark.timeout(600)
def test_hostile_build_is_contained(shoal: Shoal, tmp_path: Path) -> None:
    """A build that reads the platform's data dir, calls the API on the host's loopback and
    on its address, and forks without end: each attempt fails inside the sandbox, the build
    ends in ERROR, and the platform is unharmed."""
    api = shoal.client()
    app = api.post("/v1/apps", json={"name": "hostile"}).json()["app"]
    port = shoal.url.rsplit(":", 1)[1]
    probe = f"""\
import os, socket, sys
def attempt(what, f):
    try:
        f(); print(what, "SUCCEEDED", flush=True)
    except Exception as e:
        print(what, "blocked:", type(e).__name__, flush=True)
attempt("read secret.key", lambda: open("{shoal.data_dir}/secret.key").read())
attempt("read admin-token", lambda: open("{shoal.data_dir}/admin-token").read())
attempt("api on loopback", lambda: socket.create_connection(("127.0.0.1", {port}), 2))
host = open("/etc/hosts").read()
for ip in os.popen("ip -4 -o addr 2>/dev/null").read().split():
    pass
kids = 0
try:
    while True:
        if os.fork() == 0:
            import time; time.sleep(5); os._exit(0)
        kids += 1
except OSError as e:
    print("fork stopped after", kids, "children:", type(e).__name__, flush=True)
sys.exit(3)
"""
    repo = tmp_path / "hostile"
    commit(repo, {"requirements.txt": "", "probe.py": probe, "Procfile": "web: python probe.py\n"})
    svc = create(api, app["id"], web("hostile", repo, build_command="python probe.py"))
    d = wait_settled(api, svc["latest_deployment_id"])
    log = build_log(api, d["id"])
    assert d["status"] == "ERROR", (d["messages"], log)
    assert any("read secret.key blocked" in line for line in log), log
    assert any("read admin-token blocked" in line for line in log), log
    assert any("api on loopback blocked" in line for line in log), log
    assert any("fork stopped after" in line for line in log), log
    assert not any("SUCCEEDED" in line for line in log), log
    assert any("build command failed" in m for m in d["messages"]), d["messages"]
    assert api.get("/v1/apps").status_code == 200  # the platform answers as before


@pytest.mark.timeout(600)
def test_deploy_a_working_directory(shoal: Shoal, tmp_path: Path) -> None:
    """`shoal deploy DIR APP/SERVICE`: the directory goes up as an archive (without what git
    ignores, .git and node_modules), is built with a buildpack and runs."""
    site = tmp_path / "site"
    commit(site, {"index.html": "<h1>from an archive</h1>", ".gitignore": "secret.txt\n"})
    (site / "secret.txt").write_text("not for upload")
    (site / "draft.html").write_text("untracked but not ignored")
    (site / "node_modules").mkdir()
    (site / "node_modules" / "dep.js").write_text("left behind")
    env = {**os.environ, "SHOAL_URL": shoal.url, "SHOAL_TOKEN": shoal.admin_token}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoal",
            "deploy",
            str(site),
            "archived/site",
            "--ports",
            "8000:http",
            "--instance-type",
            "nano",
            "--wait",
            "--wait-timeout",
            "300",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = shoal.client()
    [app] = [a for a in api.get("/v1/apps").json()["apps"] if a["name"] == "archived"]
    [service] = api.get("/v1/services", params={"app_id": app["id"]}).json()["services"]
    dep = deployment(api, service["latest_deployment_id"])
    assert dep["status"] == "HEALTHY" and dep["definition"]["archive"]["id"]
    [address] = until("an address", lambda: addresses(shoal, dep["id"]))
    get = lambda path: httpx.get(f"http://{address}:8000/{path}", timeout=10)  # noqa: E731
    assert "from an archive" in get("").text
    assert get("draft.html").status_code == 200
    assert get("secret.txt").status_code == 404  # .gitignore'd
    assert get("node_modules/dep.js").status_code == 404
    assert get(".git/HEAD").status_code == 404


@pytest.mark.timeout(600)
def test_dockerfile_with_run_steps_and_a_target(
    shoal: Shoal, registry, image_builder, tmp_path: Path
) -> None:
    """A Dockerfile built with buildah: FROM an image on a registry on the node's loopback,
    a RUN step, a multi-stage build stopped at its `target`. Its RUN steps reach neither the
    platform's files nor the host's loopback."""
    base = image_builder.push(busybox_rootfs(tmp_path / "base"), registry, "base")
    port = shoal.url.rsplit(":", 1)[1]
    dockerfile = f"""\
FROM {base} AS build
RUN mkdir -p /out && echo "built by a RUN step" > /out/index.html
RUN (cat {shoal.data_dir}/secret.key && echo READ-SECRET) || echo "blocked read"
RUN (echo | nc -w 2 127.0.0.1 {port} && echo REACHED-API) || echo "blocked api"
FROM {base} AS final
COPY --from=build /out /www
CMD ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
FROM final AS debug
RUN echo "the debug stage" > /www/index.html
"""
    repo = tmp_path / "docker"
    commit(repo, {"Dockerfile": dockerfile})
    api = shoal.client()
    app = api.post("/v1/apps", json={"name": "dockerfiles"}).json()["app"]
    svc = create(api, app["id"], web("img", repo, docker={"target": "final"}))
    built = wait_settled(api, svc["latest_deployment_id"])
    log = build_log(api, built["id"])
    assert built["status"] == "HEALTHY", (built["messages"], log)
    assert get_text(shoal, built["id"]).strip() == "built by a RUN step"
    # The RUN lines are in the log too: look for what they printed, whole lines.
    assert "blocked read" in log and "blocked api" in log, log
    assert "READ-SECRET" not in log and "REACHED-API" not in log, log
