-- Disks (a user's own S3 buckets) and their attachments to sandboxes.
-- `config` is JSON text; `credentials` is one AES-256-GCM blob (bound to
-- the disk id), NULL for a public bucket.
CREATE TABLE disks (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    config       TEXT NOT NULL,
    credentials  BLOB,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX disks_owner_name ON disks(owner, name);

-- One row per (sandbox, mount path); a disk may be attached many times.
CREATE TABLE disk_attachments (
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id),
    disk_id     TEXT NOT NULL REFERENCES disks(id),
    mount_path  TEXT NOT NULL,
    sub_path    TEXT,
    read_only   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, mount_path)
);
CREATE INDEX disk_attachments_disk ON disk_attachments(disk_id);
