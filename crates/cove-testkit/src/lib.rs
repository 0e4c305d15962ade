//! Test helpers: S3 server, PostgreSQL, temp servers, users and keys
