"""`shoal login` and where later commands find the URL and token: flag > env > file."""

from __future__ import annotations

import json
import stat

from tests.conftest import free_port


def test_login_writes_a_private_config_that_later_commands_use(
    tenant, api, bare, config_home, tmp_path
):
    token_file = tmp_path / "token"
    token_file.write_text(tenant.token + "\n")
    r = bare("login", "--url", tenant.url, "--token-file", str(token_file))
    assert r.exit_code == 0, r.output
    path = config_home / "shoal" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": tenant.url, "token": tenant.token}

    r = bare("apps", "create", "from-config")
    assert r.exit_code == 0, r.output
    assert api.get("/v1/apps/from-config").status_code == 200


def test_login_reads_the_token_from_stdin(tenant, bare, config_home):
    r = bare("login", "--url", tenant.url, input=tenant.token + "\n")
    assert r.exit_code == 0, r.output
    saved = json.loads((config_home / "shoal" / "config.json").read_text())
    assert saved["token"] == tenant.token


def test_login_refuses_a_bad_token_and_saves_nothing(tenant, bare, config_home):
    r = bare("login", "--url", tenant.url, "--token", "not-a-token")
    assert r.exit_code == 1
    assert "authentication_error" in r.stderr
    assert not (config_home / "shoal" / "config.json").exists()


def test_a_flag_beats_the_environment_which_beats_the_file(tenant, bare):
    assert bare("login", "--url", tenant.url, "--token", tenant.token).exit_code == 0
    nowhere = f"http://127.0.0.1:{free_port()}"
    env_wins = bare.with_env(SHOAL_URL=nowhere)
    r = env_wins("apps", "list")
    assert r.exit_code == 5
    assert nowhere in r.stderr
    assert env_wins("--url", tenant.url, "apps", "list").exit_code == 0
    assert env_wins("--token", "wrong", "--url", tenant.url, "apps", "list").exit_code == 1


def test_an_unreadable_config_file_is_a_usage_error(bare, config_home):
    path = config_home / "shoal" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    r = bare("apps", "list")
    assert r.exit_code == 2
    assert str(path) in r.stderr
