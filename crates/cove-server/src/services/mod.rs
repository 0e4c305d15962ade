//! One service per resource; handlers call exactly one method of one.

pub mod catalog;
pub mod exec;
pub mod files;
pub mod sandboxes;
mod view;
