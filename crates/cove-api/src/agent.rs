//! The host ↔ cove-agent protocol (owned by the runtime/agent work; see
//! crates/cove-agent). Defined once here and used by both ends.
