"""The official Koyeb Python client (`koyeb-sdk`), unchanged, against shoal on both backends.

Every reply goes through the SDK's own strict models: a reply it cannot parse fails here.
Nothing runs in this build, so deployments stay PENDING; nothing here waits for HEALTHY.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from koyeb import api as koyeb
from koyeb.api.exceptions import ApiException, BadRequestException, NotFoundException
from tests.conftest import Shoal

IMAGE = "docker.io/library/nginx:alpine"
NEWER_IMAGE = "docker.io/library/nginx:1.27-alpine"


def sdk(shoal: Shoal, token: str | None = None) -> koyeb.ApiClient:
    config = koyeb.Configuration(
        host=shoal.url,
        api_key={"Bearer": token or shoal.admin_token},
        api_key_prefix={"Bearer": "Bearer"},
    )
    return koyeb.ApiClient(config)


@pytest.fixture
def client(shoal: Shoal) -> Iterator[koyeb.ApiClient]:
    with sdk(shoal) as c:
        yield c


def definition(image: str = IMAGE, **extra: object) -> koyeb.DeploymentDefinition:
    return koyeb.DeploymentDefinition(
        name="web",
        type=koyeb.DeploymentDefinitionType.WEB,
        docker=koyeb.DockerSource(image=image),
        regions=["fra"],
        ports=[koyeb.DeploymentPort(port=80, protocol="http")],
        routes=[koyeb.DeploymentRoute(port=80, path="/")],
        instance_types=[koyeb.DeploymentInstanceType(type="nano")],
        scalings=[koyeb.DeploymentScaling(min=1, max=1)],
        **extra,
    )


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll until `check` holds (the reconciler acts soon after a write, not during it)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def gone(get: Callable[[], object]) -> bool:
    try:
        get()
    except NotFoundException:
        return True
    return False


def test_apps_services_and_deployments(client):
    apps, services = koyeb.AppsApi(client), koyeb.ServicesApi(client)
    deployments = koyeb.DeploymentsApi(client)

    app = apps.create_app(koyeb.CreateApp(name="demo")).app
    assert apps.get_app(app.id).app.name == "demo"
    assert [a.id for a in apps.list_apps().apps] == [app.id]

    body = koyeb.CreateService(app_id=app.id, definition=definition())
    svc = services.create_service(body).service
    assert (svc.name, svc.type, svc.app_id) == ("web", koyeb.ServiceType.WEB, app.id)
    assert [s.id for s in services.list_services(app_id=app.id).services] == [svc.id]
    first = deployments.get_deployment(svc.latest_deployment_id).deployment
    assert first.service_id == svc.id and first.definition.docker.image == IMAGE

    env = [koyeb.DeploymentEnv(key="GREETING", value="hello")]
    updated = services.update_service(
        svc.id, koyeb.UpdateService(definition=definition(NEWER_IMAGE, env=env))
    ).service
    listed = deployments.list_deployments(service_id=svc.id)
    assert listed.count == 2
    second = listed.deployments[0]  # newest first
    assert second.id == updated.latest_deployment_id != first.id
    assert services.get_service(svc.id).service.latest_deployment_id == second.id
    assert int(second.version) > int(first.version)
    assert second.definition.docker.image == NEWER_IMAGE
    assert [(e.key, e.value) for e in second.definition.env] == [("GREETING", "hello")]
    regional = koyeb.RegionalDeploymentsApi(client).list_regional_deployments(
        deployment_id=second.id
    )
    assert [r.region for r in regional.regional_deployments] == ["fra"]

    def status() -> koyeb.ServiceStatus:
        return services.get_service(svc.id).service.status

    services.pause_service(svc.id)
    eventually(lambda: status() == koyeb.ServiceStatus.PAUSED)
    services.resume_service(svc.id)
    assert status() != koyeb.ServiceStatus.PAUSED
    redeployed = services.re_deploy(svc.id, koyeb.RedeployRequestInfo()).deployment
    assert redeployed.definition.docker.image == NEWER_IMAGE
    assert services.get_service(svc.id).service.latest_deployment_id == redeployed.id
    assert deployments.list_deployments(service_id=svc.id).count == 4  # resume made one too

    services.delete_service(svc.id)
    eventually(lambda: gone(lambda: services.get_service(svc.id)))
    apps.delete_app(app.id)
    eventually(lambda: gone(lambda: apps.get_app(app.id)))
    assert apps.list_apps().apps == []


def test_secrets_never_show_their_value_but_to_reveal(client):
    secrets = koyeb.SecretsApi(client)
    simple = koyeb.SecretType.SIMPLE
    created = secrets.create_secret(
        koyeb.CreateSecret(name="db-password", type=simple, value="hunter2")
    ).secret
    assert (created.name, created.type, created.value) == ("db-password", simple, None)
    assert secrets.get_secret(created.id).secret.value is None
    assert [s.name for s in secrets.list_secrets().secrets] == ["db-password"]
    for raw in (
        secrets.get_secret_without_preload_content(created.id),
        secrets.list_secrets_without_preload_content(),
    ):
        assert raw.status == 200 and b"hunter2" not in raw.data

    secrets.update_secret(created.id, koyeb.Secret(value="correct-horse"))
    # The SDK types RevealSecretReply.value as an object (a protobuf Value), so its parser
    # refuses the string Koyeb itself answers for a SIMPLE secret; Koyeb's CLI reads the raw
    # body for that reason, and so does this test. A registry secret's object parses.
    raw = secrets.reveal_secret_without_preload_content(created.id, {})
    assert raw.status == 200 and json.loads(raw.data) == {"value": "correct-horse"}
    registry = koyeb.PrivateRegistryConfiguration(
        username="me", password="pw", url="registry.example"
    )
    private = secrets.create_secret(
        koyeb.CreateSecret(
            name="registry", type=koyeb.SecretType.REGISTRY, private_registry=registry
        )
    ).secret
    assert private.private_registry.password is None
    assert secrets.reveal_secret(private.id, {}).value == registry.to_dict()

    secrets.delete_secret(created.id)
    with pytest.raises(NotFoundException):
        secrets.get_secret(created.id)
    assert [s.name for s in secrets.list_secrets().secrets] == ["registry"]


def test_catalog_has_the_seed_instance_types_and_regions(client):
    instances = koyeb.CatalogInstancesApi(client).list_catalog_instances(limit="100")
    assert instances.count == len(instances.instances) == 18
    assert {"free", "nano", "eco-nano", "5xlarge"} <= {i.id for i in instances.instances}
    nano = koyeb.CatalogInstancesApi(client).get_catalog_instance("nano").instance
    assert nano.memory == "256MB" and nano.regions == ["fra", "was", "sin"]

    regions = koyeb.CatalogRegionsApi(client).list_regions()
    assert [r.id for r in regions.regions] == ["fra", "was", "sin"]
    fra = koyeb.CatalogRegionsApi(client).get_region("fra").region
    assert fra.name == "Frankfurt" and "free" in fra.instances


def test_another_organizations_resources_answer_404(shoal, client):
    app = koyeb.AppsApi(client).create_app(koyeb.CreateApp(name="mine")).app
    svc = (
        koyeb.ServicesApi(client)
        .create_service(koyeb.CreateService(app_id=app.id, definition=definition()))
        .service
    )
    secret = (
        koyeb.SecretsApi(client)
        .create_secret(koyeb.CreateSecret(name="mine", type=koyeb.SecretType.SIMPLE, value="x"))
        .secret
    )

    org = (
        koyeb.OrganizationApi(client)
        .create_organization(koyeb.CreateOrganizationRequest(name="other"))
        .organization
    )
    credential = koyeb.CreateCredential(
        name="other", type=koyeb.CredentialType.ORGANIZATION, organization_id=org.id
    )
    token = koyeb.CredentialsApi(client).create_credential(credential).credential.token

    with sdk(shoal, token) as other:
        for get in (
            lambda: koyeb.AppsApi(other).get_app(app.id),
            lambda: koyeb.ServicesApi(other).get_service(svc.id),
            lambda: koyeb.DeploymentsApi(other).get_deployment(svc.latest_deployment_id),
            lambda: koyeb.SecretsApi(other).get_secret(secret.id),
            lambda: koyeb.ServicesApi(other).delete_service(svc.id),
        ):
            with pytest.raises(NotFoundException) as e:
                get()
            assert json.loads(e.value.body)["status"] == 404
        assert koyeb.AppsApi(other).list_apps().count == 0
        assert koyeb.ServicesApi(other).list_services().count == 0
    assert koyeb.ServicesApi(client).get_service(svc.id).service.id == svc.id


def test_a_validation_error_names_the_field(client):
    app = koyeb.AppsApi(client).create_app(koyeb.CreateApp(name="demo")).app
    bad = definition()
    bad.ports = [koyeb.DeploymentPort(port=70000, protocol="http")]
    with pytest.raises(BadRequestException) as e:
        koyeb.ServicesApi(client).create_service(koyeb.CreateService(app_id=app.id, definition=bad))
    assert e.value.status == 400
    body = json.loads(e.value.body)
    assert (body["status"], body["code"]) == (400, "invalid_argument")
    assert "definition.ports[0].port" in [f["field"] for f in body["fields"]]
    assert koyeb.ServicesApi(client).list_services().count == 0
    with pytest.raises(ApiException) as e:
        koyeb.AppsApi(client).list_apps(limit="lots")
    assert e.value.status == 400 and "limit" in e.value.body
