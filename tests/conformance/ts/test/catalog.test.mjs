// Health, readiness, identity and catalog methods of the TypeScript SDK
// (API.md §4.2, §11.1 "CreateosSandboxClient").

import { test } from "node:test";
import assert from "node:assert/strict";
import { CreateosSandboxClient, createClient } from "@nodeops-createos/sandbox";
import { API_KEY, BASE_URL, collect, envClient, requireEnv } from "./helpers.mjs";

test("baseUrl comes from CREATEOS_SANDBOX_BASE_URL", () => {
  const client = envClient();
  assert.equal(client.baseUrl, BASE_URL.replace(/\/+$/, ""));
  const explicit = createClient({ baseUrl: BASE_URL, apiKey: API_KEY });
  assert.ok(explicit instanceof CreateosSandboxClient);
  assert.equal(explicit.baseUrl, client.baseUrl);
});

test("healthz answers up without a key", async () => {
  // No key configured at all: healthz is one of the four unauthenticated calls.
  const client = new CreateosSandboxClient({ baseUrl: BASE_URL, apiKey: "unused" });
  const health = await client.healthz();
  assert.equal(health.up, true);
});

test("readyz answers ready", async () => {
  const ready = await envClient().readyz();
  assert.equal(ready.ready, true);
});

test("whoami names the user and counts sandboxes", async () => {
  const me = await envClient().whoami();
  assert.equal(typeof me.user_id, "string");
  assert.ok(me.user_id.length > 0);
  for (const k of ["running", "paused", "other", "total"]) {
    assert.ok(Number.isInteger(me.stats[k]), `stats.${k} is an integer`);
  }
  assert.ok(me.stats.total >= me.stats.running + me.stats.paused);
});

test("listShapes returns the catalog with sizes", async () => {
  const shapes = await envClient().listShapes();
  assert.ok(shapes.length > 0);
  const ids = new Set();
  for (const s of shapes) {
    assert.equal(typeof s.id, "string");
    assert.ok(!ids.has(s.id), `shape ${s.id} listed once`);
    ids.add(s.id);
    assert.ok(s.vcpu > 0, `${s.id} vcpu`);
    assert.ok(s.mem_mib > 0, `${s.id} mem_mib`);
    assert.ok(s.default_disk_mib > 0, `${s.id} default_disk_mib`);
  }
});

test("listRootfs lists devbox:1 and a default that is listed", async () => {
  const rootfs = await envClient().listRootfs();
  assert.ok(Array.isArray(rootfs.rootfs));
  assert.ok(rootfs.rootfs.includes("devbox:1"), `devbox:1 in ${rootfs.rootfs}`);
  assert.ok(rootfs.rootfs.includes(rootfs.default), `default ${rootfs.default} is listed`);
});

test("listHosts and iterateHosts show this host with capacity", async () => {
  const client = envClient();
  const hosts = await client.listHosts();
  assert.ok(hosts.length >= 1);
  const h = hosts[0];
  assert.equal(typeof h.id, "string");
  assert.ok(["active", "draining", "dead"].includes(h.status));
  assert.equal(h.status, "active");
  assert.ok(Number.isFinite(h.free_mib) && h.free_mib > 0, "free_mib > 0");
  assert.ok(Number.isInteger(h.vm_count) && h.vm_count >= 0);
  const iterated = await collect(client.iterateHosts());
  assert.deepEqual(
    iterated.map((x) => x.id),
    hosts.map((x) => x.id),
  );
});

test("authHeaders with Authorization: Bearer authenticate like X-Api-Key", async () => {
  const viaKey = await envClient().whoami();
  const bearer = new CreateosSandboxClient({
    baseUrl: BASE_URL,
    apiKey: "", // blank, so the env key does not clash with authHeaders
    authHeaders: { Authorization: `Bearer ${API_KEY}` },
  });
  const viaBearer = await bearer.whoami();
  assert.equal(viaBearer.user_id, viaKey.user_id);
});

test("a base URL with a path prefix works (server mounted under a prefix)", async () => {
  const prefix = requireEnv("COVE_CONFORMANCE_BASE_PATH");
  const prefixed = new CreateosSandboxClient({ baseUrl: `${BASE_URL}${prefix}/`, apiKey: API_KEY });
  assert.equal(prefixed.baseUrl, `${BASE_URL}${prefix}`);
  const me = await prefixed.whoami();
  assert.equal(me.user_id, (await envClient().whoami()).user_id);
  assert.ok((await prefixed.listShapes()).length > 0);
  assert.ok(Array.isArray(await prefixed.listSandboxes()));
  await assert.rejects(prefixed.getSandbox("sb_00000000000000000000000000"), (err) => err.statusCode === 404);
});
