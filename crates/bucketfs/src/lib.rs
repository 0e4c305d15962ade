//! An S3 filesystem: ObjectClient trait, caches, staging, FUSE adapter
