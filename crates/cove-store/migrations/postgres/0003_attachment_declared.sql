-- Whether an attachment is declared as a bind in the sandbox's OCI config
-- (made at create or restore: a checkpoint carries it, open files included)
-- or was injected live (it must be taken out before a checkpoint).
ALTER TABLE disk_attachments ADD COLUMN declared BOOLEAN NOT NULL DEFAULT FALSE;
