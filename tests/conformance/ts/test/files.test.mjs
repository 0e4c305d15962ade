// Files through the TypeScript SDK: upload (bytes, string, stream) and
// download, binary-safe; 404 for a missing file, 400 for a bad path
// (API.md §4.5).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { CreateosSandboxNotFoundError, CreateosSandboxValidationError } from "@nodeops-createos/sandbox";
import { Reaper, envClient, pickShape, uniqueName } from "./helpers.mjs";

const reaper = new Reaper();
const client = envClient();
let sb;

before(async () => {
  const shape = await pickShape(client);
  sb = reaper.track(await client.createSandbox({ shape: shape.id, name: uniqueName("conf-ts-f") }));
});

after(async () => {
  await reaper.destroyAll();
});

test("binary upload and download round-trip every byte value", async () => {
  const all = new Uint8Array(256 * 4 + 1000);
  for (let i = 0; i < 1024; i++) all[i] = i % 256;
  all.set(randomBytes(1000), 1024);
  await sb.files.upload("/tmp/conf/deep/dir/all.bin", all);
  const back = new Uint8Array(await sb.files.download("/tmp/conf/deep/dir/all.bin"));
  assert.equal(back.length, all.length);
  assert.ok(Buffer.from(back).equals(Buffer.from(all)), "bytes differ");
  const size = await sb.runCommand("stat", ["-c", "%s", "/tmp/conf/deep/dir/all.bin"]);
  assert.equal(size.result.stdout.trim(), String(all.length));
});

test("a string uploads as UTF-8 and the file is visible to exec", async () => {
  await sb.files.upload("/root/hello.txt", "héllo ✓\n");
  const cat = await sb.runCommand("cat", ["/root/hello.txt"]);
  assert.equal(cat.result.stdout, "héllo ✓\n");
  const down = Buffer.from(await sb.files.download("/root/hello.txt")).toString("utf8");
  assert.equal(down, "héllo ✓\n");
});

test("a streamed (chunked) upload of 8 MiB round-trips", async () => {
  const chunks = Array.from({ length: 8 }, () => randomBytes(1 << 20));
  const body = new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
  await sb.files.upload("/tmp/stream.bin", body, { retry: false });
  const back = Buffer.from(await sb.files.download("/tmp/stream.bin"));
  assert.ok(back.equals(Buffer.concat(chunks)), "streamed bytes differ");
});

test("an empty file round-trips", async () => {
  await sb.files.upload("/tmp/empty", new Uint8Array(0));
  const back = await sb.files.download("/tmp/empty");
  assert.equal(back.byteLength, 0);
});

test("paths with spaces, unicode and query characters round-trip", async () => {
  const path = "/tmp/x y/ü&=+%.bin";
  await sb.files.upload(path, "odd");
  const ls = await sb.runCommand("cat", [path]);
  assert.equal(ls.result.stdout, "odd");
  assert.equal(Buffer.from(await sb.files.download(path)).toString(), "odd");
});

test("a second upload replaces the file", async () => {
  await sb.files.upload("/tmp/replace.txt", "a much longer first version");
  await sb.files.upload("/tmp/replace.txt", "short");
  assert.equal(Buffer.from(await sb.files.download("/tmp/replace.txt")).toString(), "short");
});

test("downloading a missing file is NotFound (404)", async () => {
  await assert.rejects(sb.files.download("/tmp/definitely/not/here"), (err) => {
    assert.ok(err instanceof CreateosSandboxNotFoundError, String(err));
    assert.equal(err.statusCode, 404);
    assert.equal(typeof err.code, "string");
    return true;
  });
});

test("relative and malformed paths are Validation errors (400)", async () => {
  for (const bad of ["relative/path", "", "/tmp/nul\u0000byte"]) {
    await assert.rejects(sb.files.download(bad), (err) => {
      assert.ok(err instanceof CreateosSandboxValidationError, `${JSON.stringify(bad)}: ${err}`);
      assert.equal(err.statusCode, 400);
      return true;
    });
    await assert.rejects(sb.files.upload(bad, "x"), CreateosSandboxValidationError);
  }
});
