"""The files a platform reads to run the service: the Procfile (and Procfile.dev, for
honcho and foreman), config/gunicorn.py, .python-version and app.json."""

from __future__ import annotations

import json
import re
import runpy
import secrets
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from gunicorn.config import Config

from config.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")  # Heroku's, honcho's, foreman's
# The variables each add-on attaches to the app when it is provisioned.
ADDON_VARS = {"heroku-postgresql": {"DATABASE_URL"}, "heroku-redis": {"REDIS_URL"}}
# app.json's schema (devcenter.heroku.com/articles/app-json-schema): what Heroku reads.
APP_JSON_KEYS = {
    "name",
    "description",
    "keywords",
    "website",
    "repository",
    "logo",
    "success_url",
    "scripts",
    "env",
    "formation",
    "addons",
    "buildpacks",
    "environments",
    "stack",
    "image",
}
ENV_ENTRY_KEYS = {"description", "value", "required", "generator"}


def procfile(name: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        if m := PROCFILE_LINE.match(line):
            assert m.group(1) not in processes, f"{name}: {m.group(1)} twice"
            processes[m.group(1)] = m.group(2)
    return processes


def app_json() -> dict[str, Any]:
    return dict(json.loads((ROOT / "app.json").read_text()))


def addon_plans(document: dict[str, Any]) -> set[str]:
    """Each add-on's service name (``heroku-redis`` of ``heroku-redis:mini``)."""
    entries = document.get("addons", [])
    plans = [entry if isinstance(entry, str) else entry["plan"] for entry in entries]
    return {plan.split(":", 1)[0] for plan in plans}


def production_needs() -> set[str]:
    """The variables Settings.validate refuses to run production without."""
    with pytest.raises(ConfigError, match="production needs") as refused:
        Settings.from_env({"LOOTBOX_ENV": "production"})
    return {name.strip() for name in str(refused.value).split("needs", 1)[1].split(",")}


def environment_from_app_json(document: dict[str, Any]) -> dict[str, str]:
    """What a new app created from app.json runs with: fixed values, generated secrets
    (Heroku's generator: a random hex string), the add-ons' URLs, and what the person
    deploying is asked for (here, a Fernet key as the description says)."""
    env = {
        "DATABASE_URL": "postgres://u:p@ec2.example.com:5432/d1",
        "REDIS_URL": "rediss://:p@ec2.example.com:6380",
    }
    for name, entry in document["env"].items():
        if "value" in entry:
            env[name] = entry["value"]
        elif entry.get("generator") == "secret":
            env[name] = secrets.token_hex(32)
        elif name == "LOOTBOX_ENCRYPTION_KEYS":
            env[name] = Fernet.generate_key().decode()
    return env


# --- Procfile -------------------------------------------------------------------------------


def test_the_procfile_migrates_on_release_and_runs_gunicorn_and_the_reconciler() -> None:
    processes = procfile("Procfile")
    assert set(processes) == {"release", "web", "worker"}
    assert processes["release"] == "flask --app app db upgrade"
    assert processes["worker"] == "flask --app app reconcile --loop"
    web = shlex.split(processes["web"])
    assert web == ["gunicorn", "--config", "config/gunicorn.py", "wsgi:app"]


def test_gunicorn_listens_on_every_interface_at_the_platforms_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PORT", "43117")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else it makes one
    settings = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    assert settings["bind"] == "0.0.0.0:43117"

    config = Config()
    for name, value in settings.items():
        if name in config.settings:
            config.set(name, value)  # gunicorn's own validation of each setting
    assert config.address == [("0.0.0.0", 43117)]


def test_procfile_dev_is_the_procfile_without_the_release_step() -> None:
    # honcho and foreman stop every process when one exits, and the release step exits.
    production = procfile("Procfile")
    del production["release"]
    assert procfile("Procfile.dev") == production


# --- the buildpack --------------------------------------------------------------------------


def test_python_version_is_the_minor_the_project_targets() -> None:
    pinned = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", pinned), "the buildpack takes major.minor: its latest patch"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={pinned}"
    assert pyproject["tool"]["mypy"]["python_version"] == pinned
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + pinned.replace(".", "")


def test_app_json_uses_only_keys_of_the_app_json_schema() -> None:
    document = app_json()
    assert set(document) <= APP_JSON_KEYS
    for name, entry in document["env"].items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert isinstance(entry, dict) and set(entry) <= ENV_ENTRY_KEYS, name
        assert entry.get("generator", "secret") == "secret", name
        assert isinstance(entry.get("value", ""), str), f"{name}: a value is a string"
    for process, scale in document["formation"].items():
        assert set(scale) <= {"quantity", "size"} and scale["quantity"] >= 0, process


def test_app_json_provisions_postgresql_and_redis_and_runs_one_reconciler() -> None:
    document = app_json()
    assert {"heroku-postgresql", "heroku-redis"} <= addon_plans(document)
    # Heroku scales only `web` of a new app; without this the reconciler would not run.
    assert document["formation"]["worker"]["quantity"] == 1
    assert document["formation"]["web"]["quantity"] >= 1
    # Migrations are the Procfile's release step, run on every deploy; not a script here.
    assert "db upgrade" not in json.dumps(document.get("scripts", {}))


def test_app_json_declares_every_variable_production_needs() -> None:
    document = app_json()
    attached = set().union(*(ADDON_VARS.get(plan, set()) for plan in addon_plans(document)))
    declared = set(document["env"])
    assert production_needs() <= declared | attached
    assert not declared & attached, "an add-on sets these; app.json must not override them"
    assert document["env"]["LOOTBOX_ENV"]["value"] == "production"


def test_a_new_app_from_app_json_passes_the_production_checks() -> None:
    settings = Settings.from_env(environment_from_app_json(app_json()))
    assert settings.production


def test_the_encryption_keys_are_asked_for_because_a_generated_secret_is_no_fernet_key() -> None:
    entry = app_json()["env"]["LOOTBOX_ENCRYPTION_KEYS"]
    assert entry["required"] is True
    assert "value" not in entry and "generator" not in entry
    assert "Fernet.generate_key()" in entry["description"]
    # What the secret generator would have given it, refused at start:
    environment = environment_from_app_json(app_json())
    environment["LOOTBOX_ENCRYPTION_KEYS"] = secrets.token_hex(32)
    with pytest.raises(ConfigError, match="LOOTBOX_ENCRYPTION_KEYS must be"):
        Settings.from_env(environment)
