// selfPause / selfDelete of the TypeScript SDK (API.md §4.1 in-guest agent):
// they POST to http://127.0.0.1:1029 *inside* the sandbox and expect 202.
// The base image has no Node, so the SDK runs here with the sandbox's
// network namespace (nsenter --net): its 127.0.0.1 is the sandbox's, and the
// request reaches the sandbox's agent exactly as from inside.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Reaper, envClient, pickShape, requireEnv } from "./helpers.mjs";

const STATE = requireEnv("COVE_CONFORMANCE_STATE_DIR");
const SDK = fileURLToPath(new URL("../node_modules/@nodeops-createos/sandbox/dist/index.js", import.meta.url));
const reaper = new Reaper();
const client = envClient();

after(async () => {
  await reaper.destroyAll();
});

/** Runs `call` (selfPause or selfDelete) with `reason` in the sandbox's netns. */
function fromInside(sandboxId, call, reason) {
  const state = JSON.parse(execFileSync("runc", ["--root", `${STATE}/runc`, "state", sandboxId]).toString());
  const script = `const m = await import(${JSON.stringify(SDK)}); await m.${call}(${JSON.stringify(reason)}); console.log("accepted");`;
  return execFileSync("nsenter", [`--net=/proc/${state.pid}/ns/net`, process.execPath, "--input-type=module", "-e", script])
    .toString()
    .trim();
}

async function waitStatus(id, want) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const sb = await client.getSandbox(id);
    if (sb.status === want || Date.now() > deadline) return sb;
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("selfPause pauses the sandbox with its reason, selfDelete destroys it", async () => {
  const shape = await pickShape(client);
  const sb = reaper.track(await client.createSandbox({ shape: shape.id }));
  assert.equal(fromInside(sb.id, "selfPause", "waiting for a human"), "accepted");
  const paused = await waitStatus(sb.id, "paused");
  assert.equal(paused.status, "paused");
  assert.equal(paused.data.status_reason, "waiting for a human");
  await sb.resume();
  assert.equal(fromInside(sb.id, "selfDelete", ""), "accepted");
  assert.equal((await waitStatus(sb.id, "destroyed")).status, "destroyed");
});
