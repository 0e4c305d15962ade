// Error classes and machine codes the TypeScript SDK maps from cove's answers:
// 404, 400, 401, the client-side missing-key error, and another user's
// sandbox answering 404 (API.md §3.3).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  CreateosSandboxApiError,
  CreateosSandboxAuthError,
  CreateosSandboxClient,
  CreateosSandboxError,
  CreateosSandboxNotFoundError,
  CreateosSandboxValidationError,
} from "@nodeops-createos/sandbox";
import { BASE_URL, Reaper, envClient, pickShape, requireEnv, uniqueName } from "./helpers.mjs";

const reaper = new Reaper();
const client = envClient();
let shape;

before(async () => {
  shape = await pickShape(client);
});

after(async () => {
  await reaper.destroyAll();
});

function isApiError(cls, status) {
  return (err) => {
    assert.ok(err instanceof cls, `${cls.name} expected, got ${err?.constructor?.name}: ${err}`);
    assert.ok(err instanceof CreateosSandboxApiError);
    assert.equal(err.statusCode, status);
    assert.equal(typeof err.code, "string", "fail envelope carries data.code");
    assert.ok(err.code.length > 0);
    assert.ok(err.requestId, "X-Request-Id is sent");
    return true;
  };
}

test("an unknown sandbox id is NotFound with a code", async () => {
  await assert.rejects(client.getSandbox("sb_00000000000000000000000000"), (err) => {
    isApiError(CreateosSandboxNotFoundError, 404)(err);
    assert.equal(err.resourceId, "sb_00000000000000000000000000");
    return true;
  });
  await assert.rejects(client.getSandbox("sb 1/x"), isApiError(CreateosSandboxNotFoundError, 404));
  await assert.rejects(client.getSandboxByIP("10.255.255.254"), isApiError(CreateosSandboxNotFoundError, 404));
});

test("an unknown shape is a Validation error (400)", async () => {
  await assert.rejects(
    client.createSandbox({ shape: "no-such-shape" }),
    isApiError(CreateosSandboxValidationError, 400),
  );
});

test("an unknown rootfs is a Validation error (400)", async () => {
  await assert.rejects(
    client.createSandbox({ shape: shape.id, rootfs: "no-such-rootfs:9" }),
    isApiError(CreateosSandboxValidationError, 400),
  );
});

test("bad env keys and out-of-range auto-pause are Validation errors", async () => {
  await assert.rejects(
    client.createSandbox({ shape: shape.id, envs: { "1BAD-KEY": "x" } }),
    (err) => err instanceof CreateosSandboxValidationError,
  );
  await assert.rejects(
    client.createSandbox({ shape: shape.id, auto_pause_after_seconds: 59 }),
    (err) => err instanceof CreateosSandboxValidationError,
  );
  await assert.rejects(
    client.createSandbox({ shape: shape.id, region: "not-this-region" }),
    (err) => err instanceof CreateosSandboxValidationError,
  );
});

test("an unknown API key is an Auth error (401)", async () => {
  const bad = new CreateosSandboxClient({ baseUrl: BASE_URL, apiKey: "cove_not_a_real_key", retry: false });
  await assert.rejects(bad.whoami(), isApiError(CreateosSandboxAuthError, 401));
  await assert.rejects(bad.listSandboxes(), CreateosSandboxAuthError);
  // The unauthenticated catalog still answers with a bad key.
  assert.ok((await bad.listShapes()).length > 0);
});

test("a missing API key is refused before any request", async () => {
  const saved = process.env.CREATEOS_SANDBOX_API_KEY;
  delete process.env.CREATEOS_SANDBOX_API_KEY;
  try {
    const none = new CreateosSandboxClient({ baseUrl: BASE_URL });
    await assert.rejects(none.whoami(), (err) => err instanceof CreateosSandboxError && !(err instanceof CreateosSandboxApiError));
  } finally {
    process.env.CREATEOS_SANDBOX_API_KEY = saved;
  }
});

test("another user's sandbox answers 404 to every call", async () => {
  const otherKey = requireEnv("COVE_CONFORMANCE_SECOND_API_KEY");
  const other = new CreateosSandboxClient({ baseUrl: BASE_URL, apiKey: otherKey, timeoutMs: 180_000 });
  const mine = reaper.track(await client.createSandbox({ shape: shape.id, name: uniqueName("conf-ts-e") }));
  await assert.rejects(other.getSandbox(mine.id), CreateosSandboxNotFoundError);
  await assert.rejects(other.getSandboxByIP(mine.ip), CreateosSandboxNotFoundError);
  const theirs = await other.listSandboxes();
  assert.ok(!theirs.some((s) => s.id === mine.id));
  const asOther = new (mine.constructor)(other.http, mine.data);
  await assert.rejects(asOther.runCommand("true"), CreateosSandboxNotFoundError);
  await assert.rejects(asOther.files.download("/etc/hostname"), CreateosSandboxNotFoundError);
  await assert.rejects(asOther.files.upload("/tmp/x", "x"), CreateosSandboxNotFoundError);
  await assert.rejects(asOther.setIngress(true), CreateosSandboxNotFoundError);
  await assert.rejects(asOther.destroy(), CreateosSandboxNotFoundError);
  assert.equal((await mine.refresh()).status, "running", "the owner's sandbox is untouched");
});

test("exec on a destroyed sandbox is refused with a 4xx", async () => {
  const gone = reaper.track(await client.createSandbox({ shape: shape.id }));
  await gone.destroy();
  await gone.waitUntilDestroyed({ timeoutMs: 60_000 });
  await assert.rejects(gone.runCommand("true"), (err) => {
    assert.ok(err instanceof CreateosSandboxApiError, String(err));
    assert.ok([404, 409].includes(err.statusCode), `status ${err.statusCode}`);
    return true;
  });
});
