//! Background jobs.

pub mod auto_pause;
pub mod reconciler;
pub mod self_requests;
