//! HTTP handlers: each parses a request into one typed action and calls one
//! service method. Handlers never touch the store or the runtime.

pub mod catalog;
pub mod disks;
pub mod exec;
pub mod files;
pub mod lifecycle;
pub mod sandboxes;
pub mod system;

use axum::Json;
use cove_api::envelope::Success;

/// A JSend success answer.
pub fn ok<T>(data: T) -> Json<Success<T>> {
    Json(Success::new(data))
}
