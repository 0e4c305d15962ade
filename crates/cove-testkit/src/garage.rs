//! A garage S3 server on loopback ports in a temp dir, stopped on drop.
