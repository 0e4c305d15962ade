// Disks through the TypeScript SDK against a real S3 server (garage on
// loopback, started by run.sh): disks.create/get/list/iterate/
// rotateCredentials/delete, create with `disks`, attachDisk, listDisks,
// iterateDisks, detachDisk (API.md §4.8, §11.1; seed 001).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Reaper, collect, envClient, pickShape, requireEnv, uniqueName } from "./helpers.mjs";

const S3 = {
  endpoint: requireEnv("COVE_CONFORMANCE_S3_ENDPOINT"),
  region: requireEnv("COVE_CONFORMANCE_S3_REGION"),
  bucket: requireEnv("COVE_CONFORMANCE_S3_BUCKET"),
  access_key: requireEnv("COVE_CONFORMANCE_S3_ACCESS_KEY"),
  secret_key: requireEnv("COVE_CONFORMANCE_S3_SECRET_KEY"),
};

const reaper = new Reaper();
const client = envClient();
let shape;
let disk;
const diskName = uniqueName("conf-disk");

function diskRequest(name, bucket = S3.bucket) {
  return {
    name,
    kind: "s3",
    config: { bucket, endpoint: S3.endpoint, region: S3.region, use_path_style: true },
    credentials: { access_key: S3.access_key, secret_key: S3.secret_key },
  };
}

before(async () => {
  shape = await pickShape(client);
  disk = await client.disks.create(diskRequest(diskName));
});

after(async () => {
  await reaper.destroyAll();
  await client.disks.delete(diskName).catch(() => {});
});

describe("disks registry", () => {
  test("create returns a disk_ id, the config as an object and no credentials", () => {
    assert.match(disk.id, /^disk_/);
    assert.equal(disk.name, diskName);
    assert.equal(disk.kind, "s3");
    assert.equal(disk.config.bucket, S3.bucket);
    assert.equal(disk.config.endpoint, S3.endpoint);
    assert.equal(typeof disk.created_at, "string");
    assert.ok(!JSON.stringify(disk).includes(S3.secret_key));
  });

  test("create is idempotent by name", async () => {
    const again = await client.disks.create(diskRequest(diskName));
    assert.equal(again.id, disk.id);
  });

  test("get by id and by name, list and iterate", async () => {
    assert.equal((await client.disks.get(disk.id)).name, diskName);
    assert.equal((await client.disks.get(diskName)).id, disk.id);
    const listed = await client.disks.list();
    assert.ok(listed.some((d) => d.id === disk.id));
    const iterated = await collect(client.disks.iterate());
    assert.ok(iterated.some((d) => d.id === disk.id));
    for (const d of listed) assert.ok(!JSON.stringify(d).includes(S3.secret_key));
  });

  test("a missing bucket is refused with a 400 and nothing is stored", async () => {
    const name = uniqueName("conf-missing");
    await assert.rejects(client.disks.create(diskRequest(name, "no-such-bucket-conf")), (err) => {
      assert.equal(err.statusCode, 400);
      return true;
    });
    await assert.rejects(client.disks.get(name), (err) => err.statusCode === 404);
  });

  test("rotateCredentials keeps the disk and returns no secret", async () => {
    const rotated = await client.disks.rotateCredentials(disk.id, {
      access_key: S3.access_key,
      secret_key: S3.secret_key,
    });
    assert.equal(rotated.id, disk.id);
    assert.ok(!JSON.stringify(rotated).includes(S3.secret_key));
  });
});

describe("attachments", () => {
  test("create with disks mounts the bucket from the start", async () => {
    const sb = reaper.track(
      await client.createSandbox({ shape: shape.id, disks: [{ disk_id: disk.id, mount_path: "/mnt/boot" }] }),
    );
    const marker = uniqueName("boot");
    const w = await sb.runCommand("bash", ["-c", `printf ${marker} > /mnt/boot/${marker}.txt && cat /mnt/boot/${marker}.txt`]);
    assert.equal(w.result.exit_code, 0, w.result.stderr);
    assert.equal(w.result.stdout, marker);
    const disks = await sb.listDisks();
    assert.equal(disks.length, 1);
    assert.equal(disks[0].disk_id, disk.id);
    assert.equal(disks[0].mount_path, "/mnt/boot");
    assert.equal(disks[0].mount_status, "mounted");
  });

  test("attachDisk live, iterateDisks, detachDisk by id and mount path", async () => {
    const sb = reaper.track(await client.createSandbox({ shape: shape.id }));
    await sb.attachDisk({ diskId: diskName, mountPath: "/mnt/live", subPath: "conf" });
    const marker = uniqueName("live");
    const w = await sb.runCommand("bash", ["-c", `printf ${marker} > /mnt/live/${marker}.txt`]);
    assert.equal(w.result.exit_code, 0, w.result.stderr);
    const listed = await collect(sb.iterateDisks());
    assert.equal(listed.length, 1);
    assert.equal(listed[0].sub_path, "conf");
    await sb.detachDisk({ diskId: disk.id, mountPath: "/mnt/live" });
    assert.equal((await sb.listDisks()).length, 0);
    const gone = await sb.runCommand("bash", ["-c", "mountpoint -q /mnt/live && echo mounted || echo gone"]);
    assert.equal(gone.result.stdout.trim(), "gone");
    // The write went to the bucket: the same disk at another path sees it.
    await sb.attachDisk({ diskId: disk.id, mountPath: "/mnt/again" });
    const r = await sb.runCommand("cat", [`/mnt/again/conf/${marker}.txt`]);
    assert.equal(r.result.stdout, marker);
  });

  test("delete of an attached disk is refused, then allowed once detached", async () => {
    const name = uniqueName("conf-del");
    const d = await client.disks.create(diskRequest(name));
    const sb = reaper.track(await client.createSandbox({ shape: shape.id }));
    await sb.attachDisk({ diskId: d.id, mountPath: "/mnt/d" });
    await assert.rejects(client.disks.delete(d.id), (err) => err.statusCode === 409);
    await sb.detachDisk({ diskId: d.id, mountPath: "/mnt/d" });
    await client.disks.delete(d.id);
    await assert.rejects(client.disks.get(d.id), (err) => err.statusCode === 404);
  });
});
