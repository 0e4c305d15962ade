//! Test helpers (dev-only): start the S3 server (garage) and PostgreSQL on
//! loopback with `Drop` guards, start a server on a temp dir, make users and keys.

pub mod garage;
pub mod postgres;
