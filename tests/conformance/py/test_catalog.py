"""Health, readiness, identity and catalog through the Python SDK (API.md §4.2)."""

from __future__ import annotations

import createos


def test_base_url_comes_from_the_environment(client, base_url):
    assert client.base_url.rstrip("/") == base_url.rstrip("/")


def test_health_answers_up(client):
    assert client.health() == createos.Health(up=True)
    assert client.healthz().up is True


def test_readiness_answers_ready(client):
    ready = client.readiness()
    assert ready.ready is True
    assert client.readyz().ready is True


def test_who_am_i_names_the_user_with_stats(client):
    me = client.who_am_i()
    assert me.user_id
    s = me.stats
    for value in (s.running, s.paused, s.other, s.total):
        assert isinstance(value, int) and value >= 0
    assert s.total >= s.running + s.paused


def test_list_shapes_returns_sizes(client):
    shapes = client.list_shapes()
    assert shapes
    assert len({s.id for s in shapes}) == len(shapes)
    for s in shapes:
        assert s.vcpu > 0 and s.memory_mib > 0 and s.default_disk_mib > 0, s


def test_list_root_file_systems_has_devbox(client):
    data = client.list_root_file_systems()
    assert "devbox:1" in data.root_file_systems
    assert data.default in data.root_file_systems


def test_list_hosts_shows_this_host(client):
    hosts = client.list_hosts()
    assert len(hosts) >= 1
    h = hosts[0]
    assert h.id
    assert h.status == createos.HostStatus.ACTIVE
    assert h.free_memory_mib > 0
    assert h.sandbox_count >= 0


def test_a_base_url_with_a_path_prefix_works(client, base_url):
    from conftest import require_env

    prefix = require_env("COVE_CONFORMANCE_BASE_PATH")
    key = require_env("CREATEOS_API_KEY")
    with createos.Client(key, base_url=f"{base_url}{prefix}") as prefixed:
        assert prefixed.who_am_i().user_id == client.who_am_i().user_id
        assert prefixed.list_shapes()
        assert isinstance(prefixed.list_sandboxes(), list)
        assert prefixed.health().up is True
