// Shared set-up for the TypeScript SDK conformance suite: the client from the
// environment, the shape to use, unique names, and a registry of every sandbox
// a test file creates so `after()` destroys them even when an assertion failed.

import { randomBytes } from "node:crypto";
import { CreateosSandboxClient } from "@nodeops-createos/sandbox";

/** Reads a required variable; a missing one fails the run, it never skips. */
export function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run tests/conformance/run.sh, which starts cove serve and sets it`,
    );
  }
  return value;
}

export const BASE_URL = requireEnv("CREATEOS_SANDBOX_BASE_URL");
export const API_KEY = requireEnv("CREATEOS_SANDBOX_API_KEY");

/** A client configured the way a user would: from the environment only. */
export function envClient(extra = {}) {
  // Creates are synchronous (the server answers once the agent is up), so
  // give them more than the default header timeout on a loaded 2-core box.
  return new CreateosSandboxClient({ timeoutMs: 180_000, ...extra });
}

/** A lowercase DNS-label-safe name, unique across parallel runs. */
export function uniqueName(prefix) {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** The shape tests run in: COVE_TEST_SHAPE, or the smallest in the catalog. */
export async function pickShape(client) {
  const shapes = await client.listShapes();
  if (shapes.length === 0) throw new Error("GET /v1/shapes returned no shapes");
  const wanted = process.env.COVE_TEST_SHAPE;
  if (wanted) {
    const found = shapes.find((s) => s.id === wanted);
    if (!found) throw new Error(`COVE_TEST_SHAPE=${wanted} is not in the catalog`);
    return found;
  }
  return [...shapes].sort((a, b) => a.mem_mib - b.mem_mib || a.vcpu - b.vcpu)[0];
}

/** Remembers sandboxes so a file's `after()` can destroy all of them. */
export class Reaper {
  #sandboxes = [];
  track(sandbox) {
    this.#sandboxes.push(sandbox);
    return sandbox;
  }
  async destroyAll() {
    for (const sb of this.#sandboxes) {
      try {
        await sb.destroy();
      } catch (err) {
        // Already destroyed or never created: cleanup must not mask the
        // real failure of the test that made it.
        if (!(err?.statusCode === 404)) console.error(`cleanup of ${sb.id}: ${err}`);
      }
    }
    this.#sandboxes = [];
  }
}

export async function collect(asyncIterable) {
  const out = [];
  for await (const item of asyncIterable) out.push(item);
  return out;
}
