//! An S3 filesystem: ObjectClient trait, caches, staging, FUSE adapter.
//!
//! bucketfs knows nothing of sandboxes. [`client::ObjectClient`] is the seam
//! to object storage; the filesystem core ([`fs`]) is generic over it and
//! knows nothing of FUSE; [`fuse`] only converts arguments and replies.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod client;
#[cfg(feature = "testing")]
pub mod faults;
pub mod fs;
pub mod fuse;
#[cfg(feature = "testing")]
pub mod memory;
pub mod metrics;
pub mod prefetch;
pub mod s3;
pub mod staging;
pub mod upload;
