"""The deployment files: compose.yaml, the Dockerfile, the systemd unit and the licence."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in _dockerfile() if line.split()[0].upper() == name]


def test_compose_runs_postgres_one_bot_and_two_workers() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "bot", "worker"}
    assert services["bot"]["command"] == ["bot"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "replicas" not in services["bot"].get("deploy", {})
    for role in ("bot", "worker"):
        url = services[role]["environment"]["RELAY_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://")
        assert services[role]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dockerfile_runs_as_a_user_with_a_volume_and_a_healthcheck() -> None:
    assert _dockerfile()[0].startswith("FROM python:3.11-slim")
    users = _instructions("USER")
    assert users, "no USER instruction"
    assert users[-1] not in {"root", "0", "0:0"}
    assert _instructions("VOLUME") == ['["/data"]']
    assert any("RELAY_DATABASE_URL=sqlite:////data/relay.db" in e for e in _instructions("ENV"))
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert '["relay", "check"]' in healthcheck


def test_the_systemd_unit_runs_the_relay() -> None:
    unit = (ROOT / "deploy" / "solidarity-relay.service").read_text(encoding="utf-8")
    for section in ("[Unit]", "[Service]", "[Install]"):
        assert section in unit
    assert "ExecStart=/opt/solidarity-relay/bin/relay run" in unit


def test_the_licence_file_is_the_declared_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "AGPL-3.0-or-later"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("GNU AFFERO GENERAL PUBLIC LICENSE")
    assert "Version 3, 19 November 2007" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    done = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    done = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not _docker_answers(), reason="no Docker engine answers `docker info`")
def test_the_image_builds() -> None:
    done = subprocess.run(
        ["docker", "build", "--quiet", "--tag", "solidarity-relay:test", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
