-- cove's schema on PostgreSQL. Timestamps are microseconds since the Unix epoch
-- (BIGINT) so both back ends compare and sort them the same way; string
-- lists are JSON text; env values are one AES-256-GCM blob per sandbox.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Only a SHA-256 of each key is kept (keys are 256 random bits).
CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE sandboxes (
    id                        TEXT PRIMARY KEY,
    owner                     TEXT NOT NULL REFERENCES users(id),
    name                      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    failure_reason            TEXT,
    shape                     TEXT NOT NULL,
    rootfs                    TEXT NOT NULL,
    region                    TEXT NOT NULL,
    host_id                   TEXT NOT NULL,
    vcpu                      BIGINT NOT NULL,
    cpu_quota_pct             BIGINT,
    mem_mib                   BIGINT NOT NULL,
    disk_mib                  BIGINT NOT NULL,
    ip                        TEXT,
    ingress_enabled           BOOLEAN NOT NULL,
    auto_pause_after_seconds  BIGINT,
    egress                    TEXT NOT NULL,
    ssh_pubkeys               TEXT NOT NULL,
    env_names                 TEXT NOT NULL,
    env_values                BYTEA,
    spawn_ms                  DOUBLE PRECISION,
    created_by                TEXT NOT NULL,
    bandwidth_ingress_bytes   BIGINT NOT NULL,
    forked_from               TEXT,
    created_at                BIGINT NOT NULL,
    running_at                BIGINT,
    paused_at                 BIGINT,
    last_resumed_at           BIGINT,
    destroyed_at              BIGINT,
    updated_at                BIGINT NOT NULL
);

-- A name is unique per user among sandboxes that are not terminal.
CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(owner, name)
    WHERE status NOT IN ('destroyed', 'failed');
CREATE INDEX sandboxes_owner_created ON sandboxes(owner, created_at);
CREATE INDEX sandboxes_ip ON sandboxes(ip);
CREATE INDEX sandboxes_status ON sandboxes(status);
