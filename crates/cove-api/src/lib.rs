//! cove's wire types: ids, requests, views, the JSend envelope, error codes,
//! validation and the host ↔ agent protocol. No I/O happens in this crate.
//!
//! Field names and shapes come from `shared/API.md` §6 (the contract both
//! official SDKs speak); absent optional fields are omitted, never `null`.

pub mod agent;
pub mod catalog;
pub mod codes;
pub mod disk;
pub mod envelope;
pub mod exec;
pub mod ids;
pub mod lifecycle;
pub mod ndjson;
pub mod sandbox;
pub mod timestamp;
pub mod validate;
