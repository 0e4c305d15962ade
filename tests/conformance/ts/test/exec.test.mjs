// Exec through the TypeScript SDK: runCommand (buffered), streamCommand
// (NDJSON), sh, waitForPortReady (API.md §4.4, §5.1, §8).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CreateosSandboxError, CreateosSandboxTimeoutError } from "@nodeops-createos/sandbox";
import { Reaper, collect, envClient, pickShape, uniqueName } from "./helpers.mjs";

const reaper = new Reaper();
const client = envClient();
let sb;

before(async () => {
  const shape = await pickShape(client);
  sb = reaper.track(
    await client.createSandbox({ shape: shape.id, name: uniqueName("conf-ts-x"), envs: { GREETING: "hi there" } }),
  );
});

after(async () => {
  await reaper.destroyAll();
});

test("runCommand returns stdout, stderr, exit code and exec_ms", async () => {
  const res = await sb.runCommand("echo", ["a", "b"]);
  assert.equal(res.result.stdout, "a b\n");
  assert.equal(res.result.stderr, "");
  assert.equal(res.result.exit_code, 0);
  assert.equal(res.result.error, undefined);
  assert.ok(typeof res.exec_ms === "number" && res.exec_ms >= 0);
});

test("runCommand passes an argv, never a shell string", async () => {
  const res = await sb.runCommand("echo", ["$HOME", "a;b", "`id`"]);
  assert.equal(res.result.stdout, "$HOME a;b `id`\n");
});

test("a non-zero exit is a result, not an error", async () => {
  const res = await sb.runCommand("bash", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.equal(res.result.exit_code, 3);
  assert.equal(res.result.stdout, "out\n");
  assert.equal(res.result.stderr, "err\n");
});

test("a command that cannot start reports an error or a non-zero exit", async () => {
  const res = await sb.runCommand("/no/such/binary", []);
  assert.ok(res.result.error || res.result.exit_code !== 0, JSON.stringify(res.result));
});

test("sandbox envs are in the exec environment", async () => {
  const res = await sb.runCommand("printenv", ["GREETING"]);
  assert.equal(res.result.stdout, "hi there\n");
});

test("sh runs a bash script and throws on failure", async () => {
  const ok = await sb.sh("for i in 1 2 3; do printf $i; done | tr 1 x && echo");
  assert.equal(ok.result.stdout, "x23\n");
  await assert.rejects(sb.sh("echo boom >&2; exit 7", { label: "failing" }), (err) => {
    assert.ok(err instanceof CreateosSandboxError);
    assert.match(err.message, /failing/);
    assert.match(err.message, /7/);
    return true;
  });
});

test("streamCommand yields stdout and stderr in order, then the exit code", async () => {
  const events = await collect(
    sb.streamCommand("bash", ["-c", "for i in 1 2 3; do echo out$i; sleep 0.2; done; echo e >&2; exit 4"]),
  );
  const nonHb = events.filter((e) => e.type !== "heartbeat");
  const stdout = nonHb.filter((e) => e.type === "stdout").map((e) => e.data).join("");
  const stderr = nonHb.filter((e) => e.type === "stderr").map((e) => e.data).join("");
  assert.equal(stdout, "out1\nout2\nout3\n");
  assert.equal(stderr, "e\n");
  assert.ok(nonHb.filter((e) => e.type === "stdout").length >= 2, "output arrives in several frames as produced");
  const last = nonHb.at(-1);
  assert.deepEqual(last, { type: "exit", exitCode: 4 });
});

test("streamCommand delivers frames before the command ends", async () => {
  const started = Date.now();
  let firstAt;
  for await (const e of sb.streamCommand("bash", ["-c", "echo first; sleep 2; echo second"])) {
    if (e.type === "stdout" && firstAt === undefined) firstAt = Date.now() - started;
  }
  const total = Date.now() - started;
  assert.ok(firstAt !== undefined && firstAt < total - 1000, `first frame at ${firstAt} ms of ${total} ms`);
});

test("streamCommand sends heartbeats during a quiet command", async () => {
  const events = await collect(sb.streamCommand("sleep", ["6"]));
  assert.ok(events.some((e) => e.type === "heartbeat"), "at least one heartbeat in 6 s");
  assert.deepEqual(events.at(-1), { type: "exit", exitCode: 0 });
});

test("waitForPortReady sees a listener started in the sandbox", async () => {
  await sb.runCommand("bash", [
    "-c",
    "setsid python3 -m http.server 18080 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null & disown",
  ]);
  const res = await sb.waitForPortReady(18080, { timeoutMs: 20_000 });
  assert.equal(res, sb);
  await assert.rejects(sb.waitForPortReady(18081, { timeoutMs: 1_500 }), CreateosSandboxTimeoutError);
});

test("leaving a streamCommand loop early stops the command in the sandbox", async () => {
  const marker = "sleep 919191";
  for await (const e of sb.streamCommand("bash", ["-c", `echo started; exec ${marker}`])) {
    if (e.type === "stdout" && e.data.includes("started")) break; // cancels the body
  }
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ps = await sb.runCommand("ps", ["-eo", "args"]);
    if (!ps.result.stdout.includes(marker)) break;
    assert.ok(Date.now() < deadline, `still running 15 s after the client went away:\n${ps.result.stdout}`);
    await new Promise((r) => setTimeout(r, 250));
  }
});
