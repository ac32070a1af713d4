"""Property-based fuzzing of the live API (Schemathesis), and /openapi.json against Koyeb's.

One `shoal up` on SQLite serves the whole module. The fuzzer gets the admin token and, with
some probability, the ids of a seeded app, service, deployment, secret... so that it reaches
past the 404s. Every response must be: never a 5xx; a 4xx with Koyeb's error body; and what
/openapi.json declares (status, content type, headers, schema).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from cryptography.fernet import Fernet
from fastapi import routing
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from tests.conftest import Shoal, start_shoal

from shoal.api.app import create_api
from shoal.api.deps import Platform
from shoal.core.catalog import DEFAULT_REGIONS, INSTANCE_TYPES
from shoal.store.db import Database
from shoal.store.secretbox import SecretBox

KOYEB_OPENAPI = Path(os.environ.get("KOYEB_OPENAPI", "/work/shared/reference/koyeb-openapi.yaml"))
MAX_EXAMPLES = 30
ID_PROBABILITY = 0.5  # how often a generated id is replaced by a real one


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shoal]:
    s = start_shoal(tmp_path_factory.mktemp("fuzz") / "data")
    yield s
    s.stop()


def _seed(s: Shoal) -> dict[str, list[str]]:
    """An app with a service with two deployments, a secret: the ids the fuzzer may use."""
    with s.client() as api:

        def ok(r: httpx.Response) -> dict[str, Any]:
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        app = ok(api.post("/v1/apps", json={"name": "seed"}))["app"]
        definition = {"name": "web", "docker": {"image": "docker.io/library/nginx:alpine"}}
        svc = ok(api.post("/v1/services", json={"app_id": app["id"], "definition": definition}))
        ok(
            api.put(
                f"/v1/services/{svc['service']['id']}",
                json={"definition": {**definition, "env": [{"key": "A", "value": "1"}]}},
            )
        )
        deployments = ok(api.get("/v1/deployments", params={"service_id": svc["service"]["id"]}))
        regional = ok(api.get("/v1/regional_deployments"))["regional_deployments"]
        secret = ok(api.post("/v1/secrets", json={"name": "seed", "value": "s3cret"}))["secret"]
    return {
        "apps": [app["id"], app["name"]],
        "services": [svc["service"]["id"], f"{app['name']}/web"],
        "deployments": [d["id"] for d in deployments["deployments"]],
        "regional_deployments": [r["id"] for r in regional],
        "secrets": [secret["id"], secret["name"]],
        "organizations": [app["organization_id"]],
        "instance_types": list(INSTANCE_TYPES),
        "regions": list(DEFAULT_REGIONS),
    }


def _config(s: Shoal, ids: dict[str, list[str]]) -> SchemathesisConfig:
    def bind(dictionary: str) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": ID_PROBABILITY}

    by_path = [
        ("/v1/apps/", "apps"),
        ("/v1/services/", "services"),
        ("/v1/deployments/", "deployments"),
        ("/v1/regional_deployments/", "regional_deployments"),
        ("/v1/secrets/", "secrets"),
        ("/v1/organizations/", "organizations"),
        ("/v1/catalog/instances/", "instance_types"),
        ("/v1/catalog/regions/", "regions"),
    ]
    return SchemathesisConfig.from_dict(
        {
            "base-url": s.url,
            "headers": {"Authorization": f"Bearer {s.admin_token}"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "checks": {
                # shoal validates more than the schema says (names, definitions...), as Koyeb does:
                # a schema-valid request may be refused, with Koyeb's error body (checked below).
                "positive_data_acceptance": {"enabled": False},
                # And it coerces some values the schema does not list, as Koyeb's gateway does
                # (an integer sent as "80"): a schema-violating request may be served.
                "negative_data_rejection": {"enabled": False},
            },
            "dictionaries": {kind: {"values": values} for kind, values in ids.items()},
            "parameters": {
                "query.app_id": bind("apps"),
                "query.service_id": bind("services"),
                "query.deployment_id": bind("deployments"),
                "body.app_id": bind("apps"),
            },
            "operations": [
                # Deleting the token the fuzzer holds would turn the rest of the run into 401s.
                {"include-operation-id": "DeleteCredential", "enabled": False},
                *(
                    {"include-path-regex": f"^{prefix}", "parameters": {"path.id": bind(kind)}}
                    for prefix, kind in by_path
                ),
            ],
        }
    )


@schemathesis.check
def koyeb_error_body(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx is `{status, code, message}` (and 400s `fields: [{field, description}]`)."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if response.status_code == 400:
        fields = body.get("fields")
        assert isinstance(fields, list), body
        for f in fields:
            assert isinstance(f, dict) and set(f) == {"field", "description"}, body
            assert isinstance(f["field"], str) and isinstance(f["description"], str), body


def _problems(stream: Any) -> list[str]:
    """Every failed check and engine error of a run, one line (and a curl) each."""
    problems: list[str] = []
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        f = check.failure_info.failure
                        case = event.recorder.cases[case_id].value
                        problems.append(
                            f"{case.operation.label}: {check.name}: {f.title}\n"
                            f"  {f.message}\n  {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"engine error: {event!r}")
    return problems


def test_api_answers_every_request_as_declared(server):
    config = _config(server, _seed(server))
    api_schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    problems = _problems(from_schema(api_schema).execute())
    assert not problems, "\n".join(dict.fromkeys(problems))


def _served(tmp: Path) -> set[tuple[str, str]]:
    """(METHOD, path) of every /v1 route the FastAPI app serves (built here: it never opens
    its database)."""
    platform = Platform(
        db=Database(f"sqlite:///{tmp / 'unused.db'}"),
        box=SecretBox(Fernet.generate_key()),
        regions=DEFAULT_REGIONS,
        base_domain="localhost",
    )
    app = create_api(platform).app
    # Newer FastAPI nests included routers (iter_route_contexts flattens them); older is flat.
    routes = getattr(routing, "iter_route_contexts", list)(app.routes)
    return {
        (method, r.path)
        for r in routes
        if (r.path or "").startswith("/v1/")
        for method in r.methods or ()
    }


def test_openapi_describes_what_is_served_with_koyeb_operation_ids(server, tmp_path):
    doc = httpx.get(f"{server.url}/openapi.json").json()
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == _served(tmp_path)
    assert "/health" not in doc["paths"]

    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"} in schemes.values()
    for path, ops in doc["paths"].items():
        for op in ops.values():
            public = path.startswith("/v1/catalog/")
            assert bool(op.get("security")) != public, (path, op["operationId"])

    with KOYEB_OPENAPI.open() as f:
        koyeb = yaml.load(f, Loader=yaml.CSafeLoader)["paths"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            theirs = koyeb.get(path, {}).get(method, {}).get("operationId")
            assert op["operationId"] == theirs, (method.upper(), path)
