"""``deploy/``, read without Docker: two nodes sharing one PostgreSQL and one Redis, each
named, behind an HAProxy that balances on ``/readyz``, passes WebSockets, and is the one
proxy the nodes believe."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.examples import REPOSITORY
from voxline.config import Settings

DEPLOY = REPOSITORY / "deploy"


def test_two_named_nodes_share_the_database_and_redis_behind_haproxy() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    nodes = {name: services[name] for name in ("node-a", "node-b")}
    settings = {
        name: Settings.model_validate(
            {"database_url": env["VOXLINE_DATABASE_URL"], "redis_url": env["VOXLINE_REDIS_URL"]}
        )
        for name, env in ((name, node["environment"]) for name, node in nodes.items())
    }
    assert len({s.database_url for s in settings.values()}) == 1
    assert next(iter(settings.values())).database_url.startswith("postgresql://")  # type: ignore[union-attr]
    assert len({s.redis_url for s in settings.values()}) == 1
    assert [node["environment"]["VOXLINE_NODE"] for node in nodes.values()] == list(nodes)
    assert (DEPLOY / nodes["node-a"]["build"] / "Dockerfile").resolve() == REPOSITORY / "Dockerfile"

    proxy_address = services["haproxy"]["networks"]["voxline"]["ipv4_address"]
    for node in nodes.values():
        assert node["environment"]["VOXLINE_TRUSTED_PROXIES"] == f'["{proxy_address}"]'

    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    for name in nodes:
        assert f"server {name} {name}:8000" in haproxy
    assert "option httpchk GET /readyz" in haproxy
    assert "timeout tunnel 1h" in haproxy  # a call's WebSocket outlives the HTTP timeouts
    mount = services["haproxy"]["volumes"][0]
    assert mount.startswith("./haproxy.cfg:")
