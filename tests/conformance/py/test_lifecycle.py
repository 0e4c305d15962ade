"""Lifecycle through the Python SDK: pause, resume, fork, resize,
add_ssh_public_keys, set_auto_pause, and the in-guest helpers
`createos.self_pause` / `createos.self_delete` run *inside* a sandbox (the
SDK package and its pure-Python dependencies are copied in with the files
API, as a user would vendor them)."""

from __future__ import annotations

import io
import pathlib
import tarfile
import time

import createos
import httpx
import pytest
from createos import CreateSandboxRequest
from createos import RunCommandRequest as Cmd

from conftest import unique_name


def _vendored_sdk() -> bytes:
    """A tarball of the createos package and what it imports."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for mod in (createos, httpx):
            root = pathlib.Path(mod.__file__).parent
            tar.add(root, arcname=root.name)
        import anyio, certifi, h11, httpcore, idna  # noqa: E401

        for mod in (anyio, certifi, h11, httpcore, idna):
            root = pathlib.Path(mod.__file__).parent
            tar.add(root, arcname=root.name)
        import typing_extensions

        tar.add(typing_extensions.__file__, arcname="typing_extensions.py")
    return buf.getvalue()


def _wait_status(client, sb_id: str, want: str, budget: float = 30.0):
    deadline = time.monotonic() + budget
    while True:
        view = client.get_sandbox(sb_id)
        if view.status == want or time.monotonic() > deadline:
            return view
        time.sleep(0.3)


@pytest.fixture(scope="module")
def box(client, shape, reaper):
    return reaper.track(
        client.create_sandbox(CreateSandboxRequest(shape=shape.id, name=unique_name("conf-py-life")))
    )


def test_pause_resume_fork_resize_keys_and_auto_pause(client, box, reaper):
    box.run_command(Cmd(command="bash", arguments=["-c", "echo kept > /root/state"]))
    box.pause()
    assert client.get_sandbox(box.id).status == "paused"
    child = reaper.track(box.fork())
    assert child.id != box.id
    assert client.get_sandbox(child.id).status == "running"
    out = child.run_command(Cmd(command="cat", arguments=["/root/state"]))
    assert out.result.standard_output == "kept\n"
    box.resume()
    assert client.get_sandbox(box.id).status == "running"
    before = client.get_sandbox(box.id).data.disk_mib
    box.resize(before + 256)
    assert client.get_sandbox(box.id).data.disk_mib == before + 256
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyConformance py@cove"
    box.add_ssh_public_keys([key, key])
    box.set_auto_pause(120)
    assert client.get_sandbox(box.id).data.auto_pause_after_seconds == 120
    box.set_auto_pause(None)
    assert client.get_sandbox(box.id).data.auto_pause_after_seconds is None


def test_self_pause_and_self_delete_from_inside(client, shape, reaper):
    sb = reaper.track(client.create_sandbox(CreateSandboxRequest(shape=shape.id)))
    sb.files.upload("/opt/sdk.tgz", _vendored_sdk())
    unpack = sb.run_command(
        Cmd(command="bash", arguments=["-c", "mkdir -p /opt/sdk && tar -xzf /opt/sdk.tgz -C /opt/sdk"])
    )
    assert unpack.result.exit_code == 0, unpack.result.standard_error
    call = "import sys; sys.path.insert(0, '/opt/sdk'); import createos; createos.self_{}({!r}); print('accepted')"
    out = sb.run_command(Cmd(command="python3", arguments=["-c", call.format("pause", "nap time")]))
    assert out.result.standard_output.strip() == "accepted", out.result.standard_error
    view = _wait_status(client, sb.id, "paused")
    assert view.status == "paused"
    sb.resume()
    out = sb.run_command(Cmd(command="python3", arguments=["-c", call.format("delete", "all done")]))
    assert out.result.standard_output.strip() == "accepted", out.result.standard_error
    assert _wait_status(client, sb.id, "destroyed").status == "destroyed"
