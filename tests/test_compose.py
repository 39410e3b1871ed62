"""``compose.yaml``, read without Docker: it builds the Dockerfile, publishes the port, keeps
the data directory in a named volume and checks ``/healthz``."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.examples import REPOSITORY


def test_compose_runs_the_dockerfile_with_its_port_volume_and_health_check() -> None:
    compose: dict[str, Any] = yaml.safe_load((REPOSITORY / "compose.yaml").read_text())
    service = compose["services"]["voxline"]
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert (REPOSITORY / service["build"]["dockerfile"]).is_file()
    assert service["ports"] == ["8000:8000"]
    assert service["volumes"] == ["voxline-data:/data"]
    assert "voxline-data" in compose["volumes"]
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    assert 'VOLUME ["/data"]' in dockerfile and "EXPOSE 8000" in dockerfile
