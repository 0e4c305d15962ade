//! Background jobs.

pub mod reconciler;
