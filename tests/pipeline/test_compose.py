"""compose.yaml against the code: nothing runs it here (no Docker), so its services, commands,
ports and settings are checked against what the code has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.main import get_command

from latlab.cli.pipeline import pipeline_app
from latlab.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
SERVICES: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)["services"]
# Each service, the `latlab pipeline` command that runs it, and the setting of its port.
ROLES = {
    "client": ("client", "pipeline_client_port"),
    "receiver": ("server", "pipeline_receiver_port"),
    "handler": ("process", "pipeline_handler_port"),
    "writer": ("save", "pipeline_writer_port"),
}


def setting_of(variable: str) -> str:
    """The field a variable sets: ``LATLAB_PIPELINE_HOST`` sets ``pipeline_host``."""
    return variable.removeprefix("LATLAB_").lower()


def default(setting: str) -> Any:
    """A setting's default as the code declares it (the test's own LATLAB_* env aside)."""
    return Settings.model_fields[setting].default


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in SERVICES[service]["environment"].items()}


def published_ports(service: str) -> list[tuple[int, int]]:
    """``(host port, container port)`` of each ``[address:]host:container`` entry."""
    pairs = []
    for entry in SERVICES[service]["ports"]:
        host, container = str(entry).split(":")[-2:]
        pairs.append((int(host), int(container)))
    return pairs


def volume_targets(service: str) -> set[str]:
    return {str(entry).split(":")[1] for entry in SERVICES[service].get("volumes", [])}


def depends_on(service: str) -> set[str]:
    return set(SERVICES[service].get("depends_on", []))


def test_each_service_runs_its_registered_pipeline_command() -> None:
    registered = set(get_command(pipeline_app).commands)  # type: ignore[attr-defined]
    for service, (command, _) in ROLES.items():
        assert SERVICES[service]["command"] == ["pipeline", command], service
        assert command in registered


def test_the_services_run_latlab_from_the_image_built_here() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["latlab"\]$', dockerfile, re.MULTILINE)
    for service in ROLES:
        assert SERVICES[service]["build"] == "."


def test_the_image_copies_what_the_wheel_is_built_from() -> None:
    """Found in review: the build hook and node_modules were left out, so the image's
    `pip install .` stopped ("Build script does not exist")."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    hook = re.search(r'^path = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert hook is not None
    copied = " ".join(re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE))
    assert hook[1] in copied.split()
    assert "package-lock.json" in copied
    assert re.search(r"^RUN npm ci\b", dockerfile, re.MULTILINE)
    assert "--from=assets /assets/node_modules ./node_modules" in copied


def test_published_ports_are_the_settings_defaults() -> None:
    for service, (_, setting) in ROLES.items():
        port = default(setting)
        assert published_ports(service) == [(port, port)], service


def test_every_latlab_variable_named_in_the_file_is_a_setting() -> None:
    named = set(re.findall(r"\bLATLAB_[A-Z0-9_]+", COMPOSE_TEXT))
    assert named
    unknown = {name for name in named if setting_of(name) not in Settings.model_fields}
    assert not unknown


@pytest.mark.parametrize("service", list(ROLES))
def test_each_services_environment_is_valid_settings(service: str) -> None:
    values = {setting_of(name): value for name, value in environment(service).items()}
    settings = Settings.model_validate(values)
    assert settings.pipeline_host == "0.0.0.0"  # reachable from the other containers
    assert urlsplit(settings.redis_url or "").hostname == "redis"


def test_the_client_sends_to_the_receivers_port() -> None:
    url = urlsplit(environment("client")["LATLAB_PIPELINE_RECEIVER_URL"])
    assert url.hostname == "receiver"
    [(_, receiver_port)] = published_ports("receiver")
    assert url.port == receiver_port == default("pipeline_receiver_port")


def test_the_services_start_after_redis() -> None:
    for service in ROLES:
        assert "redis" in depends_on(service), service


def test_redis_fsyncs_its_append_only_file_on_a_volume() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync always" in command
    assert "/data" in volume_targets("redis")


def test_the_writers_out_dir_is_a_volume() -> None:
    out_dir = environment("writer")["LATLAB_PIPELINE_OUT_DIR"]
    assert out_dir in volume_targets("writer")


def test_the_receiver_allows_the_host_the_client_calls_it_by() -> None:
    host = urlsplit(environment("client")["LATLAB_PIPELINE_RECEIVER_URL"]).hostname
    allowed = environment("receiver").get("LATLAB_ALLOWED_HOSTS", "").split(",")
    assert host in allowed  # else the receiver's Host check answers the client 400
