//! A PostgreSQL server on a loopback port in a temp dir, stopped on drop.
