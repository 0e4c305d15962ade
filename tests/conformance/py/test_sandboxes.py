"""Sandbox lifecycle through the Python SDK: create, get, get by ip, list
with a status filter and a limit, PATCH (ingress, auto-pause), destroy and
wait_until_destroyed (API.md §4.3, §8)."""

from __future__ import annotations

import re

import createos
import pytest
from createos import SandboxStatus as St

from conftest import SECRET, unique_name


def test_create_returns_a_running_instance(sandbox, shape):
    assert sandbox.id.startswith("sb_")
    assert sandbox.status == St.RUNNING
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", sandbox.ip_address or "")
    d = sandbox.data
    assert d.shape == shape.id
    assert d.rootfs == "devbox:1"
    assert d.vcpu == shape.vcpu
    assert d.memory_mib == shape.memory_mib
    assert d.spawn_milliseconds > 0
    assert sandbox.name.startswith("conf-py-")


def test_get_sandbox_and_refresh_agree(client, sandbox):
    got = client.get_sandbox(sandbox.id)
    assert got.id == sandbox.id
    assert got.status == St.RUNNING
    assert got.name == sandbox.name
    assert got.ip_address == sandbox.ip_address
    assert got.data.created_at is not None
    assert got.data.running_at is not None
    assert sandbox.refresh() is sandbox
    assert sandbox.data.created_at == got.data.created_at


def test_env_values_are_never_returned(client, sandbox):
    got = client.get_sandbox(sandbox.id)
    assert sorted(got.data.environment_variables) == ["CONF_SECRET", "GREETING"]
    assert SECRET not in repr(got.data)
    listed = client.list_sandboxes()
    assert all(SECRET not in repr(s.data) for s in listed)


def test_get_sandbox_by_ip(client, sandbox):
    got = client.get_sandbox_by_ip(sandbox.ip_address)
    assert got.id == sandbox.id


def test_wait_until_running_returns_at_once(sandbox):
    assert sandbox.wait_until_running(createos.WaitOptions(timeout=10)).status == St.RUNNING


def test_list_sandboxes_filters_by_status_and_limits(client, shape, reaper, sandbox):
    extra = [
        reaper.track(
            client.create_sandbox(
                createos.CreateSandboxRequest(shape=shape.id, name=unique_name("conf-py-l"))
            )
        )
        for _ in range(2)
    ]
    running = client.list_sandboxes(createos.ListSandboxesOptions(status=St.RUNNING))
    ids = {s.id for s in running}
    for s in [sandbox, *extra]:
        assert s.id in ids
    assert all(s.status == St.RUNNING for s in running)
    two = client.list_sandboxes(createos.ListSandboxesOptions(limit=2))
    assert len(two) == 2
    one = client.list_sandboxes(createos.ListSandboxesOptions(limit=1, status=St.RUNNING))
    assert len(one) == 1 and one[0].status == St.RUNNING


def test_set_ingress_round_trips(client, sandbox):
    assert sandbox.set_ingress(True) is sandbox
    assert sandbox.data.ingress_enabled is True
    assert client.get_sandbox(sandbox.id).data.ingress_enabled is True
    sandbox.set_ingress(False)
    assert sandbox.data.ingress_enabled is False
    assert sandbox.data.ingress_url_template == ""


def test_set_auto_pause_round_trips(client, sandbox):
    sandbox.set_auto_pause(900)
    assert sandbox.data.auto_pause_after_seconds == 900
    assert client.get_sandbox(sandbox.id).data.auto_pause_after_seconds == 900
    sandbox.set_auto_pause(None)
    assert sandbox.data.auto_pause_after_seconds is None
    assert client.get_sandbox(sandbox.id).data.auto_pause_after_seconds is None


def test_destroy_then_wait_and_the_row_stays(client, shape, reaper):
    victim = reaper.track(
        client.create_sandbox(createos.CreateSandboxRequest(shape=shape.id))
    )
    assert victim.destroy() is None
    assert victim.status in (St.DESTROYING, St.DESTROYED)
    victim.wait_until_destroyed(createos.WaitOptions(timeout=60))
    assert victim.status == St.DESTROYED
    again = client.get_sandbox(victim.id)
    assert again.status == St.DESTROYED
    assert again.data.destroyed_at is not None
    victim.destroy()  # idempotent
    assert victim.status == St.DESTROYED
    destroyed = client.list_sandboxes(createos.ListSandboxesOptions(status=St.DESTROYED))
    assert victim.id in {s.id for s in destroyed}
    running = client.list_sandboxes(createos.ListSandboxesOptions(status=St.RUNNING))
    assert victim.id not in {s.id for s in running}


def test_create_with_unknown_shape_is_400(client):
    with pytest.raises(createos.APIError) as info:
        client.create_sandbox(createos.CreateSandboxRequest(shape="no-such-shape"))
    assert info.value.status_code == 400
