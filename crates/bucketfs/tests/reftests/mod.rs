//! Reference-model tests (STYLE.md §4): random operation sequences applied
//! to the filesystem over the in-memory client and to a plain model.

pub mod fuse_harness;
pub mod harness;
pub mod model;
pub mod ops;
