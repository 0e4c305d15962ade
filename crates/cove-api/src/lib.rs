//! cove's wire types: ids, requests, views, the JSend envelope, error codes,
//! validation and the host ↔ agent protocol. No I/O happens in this crate.

pub mod agent;
pub mod ids;
