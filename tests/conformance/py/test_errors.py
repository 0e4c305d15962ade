"""Error statuses and bodies as the Python SDK sees them: 404, 400, 401,
the client-side missing-key error, and another user's sandbox (API.md §3.3)."""

from __future__ import annotations

import createos
import pytest
from createos import RunCommandRequest as Cmd

from conftest import require_env, unique_name


def _assert_fail(err: createos.APIError, status: int) -> None:
    assert err.status_code == status, str(err)
    assert err.request_id, "X-Request-Id is sent"
    # A JSend fail envelope with data.code and data.message (API.md §3.3).
    assert "code:" in str(err) and "message:" in str(err), str(err)


def test_unknown_sandbox_is_404(client):
    with pytest.raises(createos.APIError) as info:
        client.get_sandbox("sb_00000000000000000000000000")
    _assert_fail(info.value, 404)
    with pytest.raises(createos.APIError) as info:
        client.get_sandbox_by_ip("10.255.255.254")
    _assert_fail(info.value, 404)


def test_invalid_create_is_400(client, shape):
    for req in (
        createos.CreateSandboxRequest(shape="no-such-shape"),
        createos.CreateSandboxRequest(shape=shape.id, rootfs="no-such-rootfs:9"),
        createos.CreateSandboxRequest(shape=shape.id, environment_variables={"1BAD": "x"}),
        createos.CreateSandboxRequest(shape=shape.id, environment_variables={"BIG": "x" * 5000}),
    ):
        with pytest.raises(createos.APIError) as info:
            client.create_sandbox(req)
        assert info.value.status_code in (400, 422), (req, str(info.value))
        assert "code:" in str(info.value)


def test_unknown_key_is_401(base_url):
    with createos.Client("cove_not_a_real_key", base_url=base_url) as bad:
        with pytest.raises(createos.APIError) as info:
            bad.who_am_i()
        _assert_fail(info.value, 401)
        assert bad.list_shapes(), "the catalog needs no key"


def test_missing_key_is_refused_client_side(base_url):
    with createos.Client("", base_url=base_url) as none:
        with pytest.raises(createos.AuthenticationError):
            none.who_am_i()


def test_other_users_sandbox_is_404(client, shape, reaper, base_url):
    other_key = require_env("COVE_CONFORMANCE_SECOND_API_KEY")
    mine = reaper.track(
        client.create_sandbox(createos.CreateSandboxRequest(shape=shape.id, name=unique_name("conf-py-e")))
    )
    with createos.Client(other_key, base_url=base_url) as other:
        with pytest.raises(createos.APIError) as info:
            other.get_sandbox(mine.id)
        assert info.value.status_code == 404
        assert mine.id not in {s.id for s in other.list_sandboxes()}
        foreign = createos.SandboxInstance(other._transport, mine.data)
        for call in (
            lambda: foreign.run_command(Cmd(command="true")),
            lambda: foreign.files.upload("/tmp/x", b"x"),
            lambda: foreign.set_ingress(True),
            lambda: foreign.destroy(),
        ):
            with pytest.raises(createos.APIError) as info:
                call()
            assert info.value.status_code == 404
    assert mine.refresh().status == createos.SandboxStatus.RUNNING
