"""Shared fixtures for the Python SDK conformance suite.

The client comes from the environment exactly as a user's would
(CREATEOS_SANDBOX_BASE_URL, CREATEOS_API_KEY); a missing variable fails the
run instead of skipping. Every sandbox a test creates goes through `reaper`,
which destroys it at the end of the module even when an assertion failed.
"""

from __future__ import annotations

import os
import secrets

import createos
import pytest


def require_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: run tests/conformance/run.sh, which starts "
            "cove serve and sets it",
            pytrace=False,
        )
    return value


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def base_url() -> str:
    return require_env("CREATEOS_SANDBOX_BASE_URL")


@pytest.fixture(scope="session")
def client(base_url: str):
    require_env("CREATEOS_API_KEY")
    # Creates are synchronous; allow for a loaded 2-core machine.
    with createos.Client(timeout=180.0) as c:
        yield c


@pytest.fixture(scope="session")
def shape(client) -> createos.Shape:
    shapes = client.list_shapes()
    assert shapes, "GET /v1/shapes returned no shapes"
    wanted = os.environ.get("COVE_TEST_SHAPE")
    if wanted:
        found = [s for s in shapes if s.id == wanted]
        assert found, f"COVE_TEST_SHAPE={wanted} is not in the catalog"
        return found[0]
    return sorted(shapes, key=lambda s: (s.memory_mib, s.vcpu))[0]


class Reaper:
    def __init__(self) -> None:
        self.sandboxes: list[createos.SandboxInstance] = []

    def track(self, sb: createos.SandboxInstance) -> createos.SandboxInstance:
        self.sandboxes.append(sb)
        return sb

    def destroy_all(self) -> None:
        for sb in self.sandboxes:
            try:
                sb.destroy()
            except createos.APIError as err:
                if err.status_code != 404:
                    print(f"cleanup of {sb.id}: {err}")
        self.sandboxes.clear()


@pytest.fixture(scope="module")
def reaper():
    r = Reaper()
    yield r
    r.destroy_all()


@pytest.fixture(scope="module")
def sandbox(client, shape, reaper) -> createos.SandboxInstance:
    """One running sandbox shared by a module's tests."""
    return reaper.track(
        client.create_sandbox(
            createos.CreateSandboxRequest(
                shape=shape.id,
                rootfs="devbox:1",
                name=unique_name("conf-py"),
                environment_variables={"GREETING": "hi there", "CONF_SECRET": SECRET},
            )
        )
    )


SECRET = f"s3cr3t-{secrets.token_hex(8)}"
