-- Why a sandbox is in its status when code inside asked for it
-- (self-pause, self-delete: the reason given, at most 128 characters).
ALTER TABLE sandboxes ADD COLUMN status_reason TEXT;
