// Lifecycle through the TypeScript SDK with real CRIU checkpoints: pause,
// waitUntilPaused, resume, waitUntilRunning, fork (with overrides and
// start_paused), resize, addSSHPubkeys, setAutoPause (API.md §4.3, §8, §11.1).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Reaper, envClient, pickShape, uniqueName } from "./helpers.mjs";

const reaper = new Reaper();
const client = envClient();
let shape;
let sb;

before(async () => {
  shape = await pickShape(client);
  sb = reaper.track(await client.createSandbox({ shape: shape.id, name: uniqueName("conf-life"), envs: { LIFE: "source" } }));
  // State in memory and on disk that a checkpoint must carry.
  const r = await sb.runCommand("bash", ["-c", "echo on-disk > /root/state; setsid sleep 7777 >/dev/null 2>&1 </dev/null & echo started"]);
  assert.equal(r.result.exit_code, 0, r.result.stderr);
});

after(async () => {
  await reaper.destroyAll();
});

describe("pause and resume", () => {
  test("pause, waitUntilPaused, resume, waitUntilRunning keep processes and files", async () => {
    await sb.pause();
    await sb.waitUntilPaused({ timeoutMs: 60_000 });
    assert.equal(sb.status, "paused");
    const view = await client.getSandbox(sb.id);
    assert.equal(view.status, "paused");
    assert.equal(typeof view.paused_at, "string");
    await sb.resume();
    await sb.waitUntilRunning({ timeoutMs: 60_000 });
    assert.equal(sb.status, "running");
    const r = await sb.runCommand("bash", ["-c", "cat /root/state; pgrep -xf 'sleep 7777' >/dev/null && echo alive"]);
    assert.equal(r.result.stdout, "on-disk\nalive\n");
    const again = await client.getSandbox(sb.id);
    assert.equal(typeof again.last_resumed_at, "string");
  });

  test("resuming a running sandbox is a 409", async () => {
    await assert.rejects(sb.resume(), (err) => err.statusCode === 409);
  });
});

describe("fork", () => {
  test("fork of a paused sandbox: new id, name and address, overrides, source stays paused", async () => {
    await sb.pause();
    const child = reaper.track(await sb.fork({ envs: { LIFE: "fork" } }));
    assert.notEqual(child.id, sb.id);
    assert.match(child.id, /^sb_/);
    assert.equal(child.status, "running");
    assert.equal(child.data.forked_from, sb.id);
    assert.notEqual(child.ip, sb.ip);
    const r = await child.runCommand("bash", ["-c", "cat /root/state; echo $LIFE; echo child > /root/state"]);
    assert.equal(r.result.stdout, "on-disk\nfork\n");
    const paused = reaper.track(await sb.fork({ start_paused: true }));
    assert.equal(paused.status, "paused");
    assert.equal((await client.getSandbox(sb.id)).status, "paused");
    await sb.resume();
    const src = await sb.runCommand("bash", ["-c", "cat /root/state; echo $LIFE"]);
    assert.equal(src.result.stdout, "on-disk\nsource\n", "the fork's write is not the source's");
  });

  test("fork of a running sandbox is a 409", async () => {
    await assert.rejects(sb.fork(), (err) => err.statusCode === 409);
  });
});

describe("resize, ssh keys, auto-pause", () => {
  test("resize grows the disk and refuses to shrink", async () => {
    const before = (await client.getSandbox(sb.id)).disk_mib;
    const res = await sb.resize(before + 512);
    assert.deepEqual(res, { id: sb.id, disk_mib: before + 512 });
    await assert.rejects(sb.resize(before), (err) => err.statusCode === 400);
  });

  test("addSSHPubkeys deduplicates and counts", async () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIConformanceKey conf@cove";
    const first = await sb.addSSHPubkeys([key, key]);
    const second = await sb.addSSHPubkeys([key]);
    assert.equal(second.count, first.count);
    assert.ok(first.count >= 1);
  });

  test("setAutoPause sets and clears the threshold", async () => {
    await sb.setAutoPause(600);
    assert.equal((await client.getSandbox(sb.id)).auto_pause_after_seconds, 600);
    await sb.setAutoPause(null);
    assert.equal((await client.getSandbox(sb.id)).auto_pause_after_seconds, undefined);
  });
});
