//! Background jobs.

pub mod auto_pause;
pub mod reconciler;
