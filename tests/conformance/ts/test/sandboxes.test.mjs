// Sandbox lifecycle through the TypeScript SDK: create (client and static),
// get / connect / refresh / by-ip, list with a status filter and paging,
// iterate, PATCH (ingress, auto-pause), destroy and waitUntilDestroyed
// (API.md §4.3, §8, §11.1 "Sandbox").

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, CreateosSandboxValidationError } from "@nodeops-createos/sandbox";
import { BASE_URL, API_KEY, Reaper, collect, envClient, pickShape, uniqueName } from "./helpers.mjs";

const reaper = new Reaper();
const client = envClient();
let shape;
let sb; // created by client.createSandbox in before()
let sbName;
const SECRET = `s3cr3t-${uniqueName("v")}`;

before(async () => {
  shape = await pickShape(client);
  sbName = uniqueName("conf-ts");
  sb = reaper.track(
    await client.createSandbox({
      shape: shape.id,
      rootfs: "devbox:1",
      name: sbName,
      envs: { CONF_SECRET: SECRET, CONF_PLAIN: "plain" },
    }),
  );
});

after(async () => {
  await reaper.destroyAll();
});

describe("create", () => {
  test("createSandbox returns a running handle with its view", () => {
    assert.match(sb.id, /^sb_/);
    assert.equal(sb.status, "running");
    assert.equal(sb.name, sbName);
    assert.equal(typeof sb.ip, "string");
    assert.match(sb.ip, /^\d+\.\d+\.\d+\.\d+$/);
    const d = sb.data;
    assert.equal(d.shape, shape.id);
    assert.equal(d.rootfs, "devbox:1");
    assert.equal(d.vcpu, shape.vcpu);
    assert.equal(d.mem_mib, shape.mem_mib);
    assert.equal(d.disk_mib, shape.default_disk_mib);
    assert.ok(d.spawn_ms > 0, `spawn_ms=${d.spawn_ms} measured`);
    assert.deepEqual(sb.toJSON(), d);
  });

  test("Sandbox.create with an auto-generated name", async () => {
    const other = reaper.track(
      await Sandbox.create({ shape: shape.id }, { baseUrl: BASE_URL, apiKey: API_KEY, timeoutMs: 180_000 }),
    );
    assert.equal(other.status, "running");
    assert.match(other.name ?? "", /^[a-z]+-[a-z]+/, `generated name ${other.name}`);
    assert.notEqual(other.id, sb.id);
    assert.notEqual(other.ip, sb.ip);
    const view = await client.getSandbox(other.id);
    assert.equal(view.data.rootfs.length > 0, true, "rootfs defaults to the host default");
  });

  test("a second running sandbox with the same name is refused", async () => {
    await assert.rejects(
      client.createSandbox({ shape: shape.id, name: sbName }),
      (err) => err.statusCode === 409 || err.statusCode === 400 || err.statusCode === 422,
    );
  });
});

describe("read", () => {
  test("getSandbox, Sandbox.connect and refresh return the same view", async () => {
    const got = await client.getSandbox(sb.id);
    assert.equal(got.id, sb.id);
    assert.equal(got.status, "running");
    assert.equal(got.name, sbName);
    assert.equal(got.ip, sb.ip);
    assert.match(got.data.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$/);
    assert.match(got.data.running_at, /Z$/);
    const connected = await Sandbox.connect(sb.id, { baseUrl: BASE_URL, apiKey: API_KEY });
    assert.equal(connected.id, sb.id);
    assert.equal(connected.status, "running");
    const refreshed = await sb.refresh();
    assert.equal(refreshed, sb, "refresh returns the same handle");
    assert.equal(sb.data.created_at, got.data.created_at);
  });

  test("env values never appear in a view, only names", async () => {
    const got = await client.getSandbox(sb.id);
    assert.deepEqual([...got.data.envs].sort(), ["CONF_PLAIN", "CONF_SECRET"]);
    const wire = JSON.stringify(got.data) + JSON.stringify(sb.data);
    assert.ok(!wire.includes(SECRET), "secret value leaked in a view");
    const listed = await client.listSandboxes();
    assert.ok(!JSON.stringify(listed.map((s) => s.data)).includes(SECRET));
  });

  test("getSandboxByIP finds the sandbox by its address", async () => {
    const got = await client.getSandboxByIP(sb.ip);
    assert.equal(got.id, sb.id);
  });

  test("waitUntilRunning on a running sandbox returns at once", async () => {
    const res = await sb.waitUntilRunning({ timeoutMs: 10_000 });
    assert.equal(res.status, "running");
  });
});

describe("list", () => {
  let extra = [];
  before(async () => {
    for (let i = 0; i < 2; i++) {
      extra.push(reaper.track(await client.createSandbox({ shape: shape.id, name: uniqueName("conf-ts-l") })));
    }
  });

  test("listSandboxes with status=running includes every running one", async () => {
    const running = await client.listSandboxes({ status: "running" });
    const ids = running.map((s) => s.id);
    for (const s of [sb, ...extra]) assert.ok(ids.includes(s.id), `${s.id} listed`);
    for (const s of running) assert.equal(s.status, "running");
  });

  test("listSandboxes with a cap returns that many", async () => {
    const two = await client.listSandboxes({ limit: 2 });
    assert.equal(two.length, 2);
  });

  test("iterateSandboxes yields the same ids as listSandboxes", async () => {
    const listed = (await client.listSandboxes({ status: "running" })).map((s) => s.id).sort();
    const iterated = (await collect(client.iterateSandboxes({ status: "running" }))).map((s) => s.id).sort();
    assert.deepEqual(iterated, listed);
  });

  test("limit and offset page through with pagination totals", async () => {
    const first = await client.http.request("GET", "/v1/sandboxes", { query: { status: "running", limit: 1, offset: 0 } });
    assert.equal(first.pagination.limit, 1);
    assert.equal(first.pagination.offset, 0);
    assert.equal(first.pagination.count, 1);
    assert.equal(first.data.length, 1);
    const total = first.pagination.total;
    assert.ok(total >= 3, `total=${total}`);
    const seen = [first.data[0].id];
    for (let offset = 1; offset < total; offset++) {
      const page = await client.http.request("GET", "/v1/sandboxes", { query: { status: "running", limit: 1, offset } });
      assert.equal(page.pagination.total, total);
      assert.equal(page.data.length, 1);
      seen.push(page.data[0].id);
    }
    assert.equal(new Set(seen).size, total, "pages do not overlap");
    const past = await client.http.request("GET", "/v1/sandboxes", { query: { status: "running", limit: 1, offset: total } });
    assert.equal(past.data.length, 0);
    assert.equal(past.pagination.count, 0);
  });

  test("limit above 500 is clamped", async () => {
    const page = await client.http.request("GET", "/v1/sandboxes", { query: { limit: 5000 } });
    assert.ok(page.pagination.limit <= 500, `limit=${page.pagination.limit}`);
  });
});

describe("patch", () => {
  test("setIngress toggles ingress_enabled", async () => {
    await sb.setIngress(true);
    assert.equal(sb.data.ingress_enabled, true);
    assert.equal((await client.getSandbox(sb.id)).data.ingress_enabled, true);
    await sb.setIngress(false);
    assert.equal(sb.data.ingress_enabled, false);
    assert.equal(sb.data.ingress_url_template, undefined);
  });

  test("setAutoPause stores seconds and null disables it", async () => {
    await sb.setAutoPause(600);
    assert.equal(sb.data.auto_pause_after_seconds, 600);
    assert.equal((await client.getSandbox(sb.id)).data.auto_pause_after_seconds, 600);
    await sb.setAutoPause(null);
    assert.equal(sb.data.auto_pause_after_seconds, undefined);
    assert.equal(sb.status, "running");
  });

  test("setAutoPause outside 60..86400 is a validation error", async () => {
    await assert.rejects(sb.setAutoPause(5), CreateosSandboxValidationError);
  });
});

describe("destroy", () => {
  test("destroy, waitUntilDestroyed, and the row stays readable", async () => {
    const victim = reaper.track(await client.createSandbox({ shape: shape.id }));
    const res = await victim.destroy();
    assert.equal(res.id, victim.id);
    assert.ok(["destroying", "destroyed"].includes(res.status), res.status);
    assert.equal(victim.status, res.status);
    await victim.waitUntilDestroyed({ timeoutMs: 60_000 });
    assert.equal(victim.status, "destroyed");
    const again = await client.getSandbox(victim.id);
    assert.equal(again.status, "destroyed");
    assert.match(again.data.destroyed_at ?? "", /Z$/);
    const twice = await victim.destroy();
    assert.equal(twice.id, victim.id);
    assert.equal(twice.status, "destroyed", "a second destroy is idempotent");
    const destroyed = await client.listSandboxes({ status: "destroyed" });
    assert.ok(destroyed.some((s) => s.id === victim.id));
    const running = await client.listSandboxes({ status: "running" });
    assert.ok(!running.some((s) => s.id === victim.id));
  });
});
