"""The exit codes scripts rely on: 1 API refusal, 2 usage, 4 wait timeout, 5 unreachable."""

from __future__ import annotations

from tests.conftest import free_port


def test_bad_input_exits_1_with_each_field_error_on_stderr(cli):
    cli("apps", "create", "shop")
    r = cli("services", "create", "web", "--app", "shop", "--docker", "nginx", "--ports", "0:http")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "Validation error" in r.stderr
    assert "definition.ports[0].port: must be between 1 and 65535" in r.stderr


def test_a_missing_resource_exits_1(cli):
    r = cli("apps", "get", "nope")
    assert r.exit_code == 1
    assert "not found" in r.stderr


def test_malformed_flags_are_usage_errors(cli):
    for flags in (
        ["--ports", "http"],
        ["--env", "NOEQUALS"],
        ["--checks", "80:udp"],
        ["--docker", "nginx", "--git", "github.com/a/b"],
    ):
        r = cli("services", "create", "web", "--app", "shop", *flags)
        assert r.exit_code == 2, (flags, r.output)
    assert cli("apps", "frobnicate").exit_code == 2


def test_an_unreachable_api_exits_5_naming_the_url(bare):
    url = f"http://127.0.0.1:{free_port()}"
    r = bare("--url", url, "--token", "t", "apps", "list")
    assert r.exit_code == 5
    assert f"cannot reach the shoal API at {url}" in r.stderr


def test_wait_times_out_with_exit_4_while_no_node_runs_it(cli):
    cli("apps", "create", "shop")
    r = cli(
        "services",
        "create",
        "web",
        "--app",
        "shop",
        "--docker",
        "nginx",
        "--wait",
        "--wait-timeout",
        "0.2",
    )
    assert r.exit_code == 4
    assert "gave up waiting" in r.stderr
    assert "(status " in r.stderr  # the last status seen: PENDING or SCHEDULED, no node here


def test_the_exit_codes_are_in_the_help(bare):
    r = bare("--help")
    assert r.exit_code == 0
    for code in (
        "0 success",
        "1 the API refused",
        "2 usage error",
        "3 --wait ended",
        "4 --wait timed out",
        "5 cannot reach the API",
    ):
        assert code in " ".join(r.stdout.split())
