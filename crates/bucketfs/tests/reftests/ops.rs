//! The operations of the reference test, over a small universe of paths so
//! random sequences collide often (same names, nested directories).

use proptest::prelude::*;

/// Paths the operations use.
pub const PATHS: [&str; 9] = ["x", "y", "d", "d/x", "d/y", "e", "e/x", "d/f", "d/f/x"];

/// One step.
#[derive(Debug, Clone)]
pub enum Op {
    /// open(O_CREAT|O_WRONLY), pwrite `len` bytes of `byte` at `offset`, close.
    Write {
        path: usize,
        offset: u32,
        len: u32,
        byte: u8,
    },
    Truncate {
        path: usize,
        len: u32,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Unlink {
        path: usize,
    },
    Mkdir {
        path: usize,
    },
    Rmdir {
        path: usize,
    },
    Symlink {
        path: usize,
        target: usize,
    },
    /// Unmount (flushing) and mount again.
    Remount,
    /// Another client writes the object behind the mount's back.
    ExternalPut {
        path: usize,
        len: u32,
        byte: u8,
    },
    /// Another client deletes the object behind the mount's back.
    ExternalDelete {
        path: usize,
    },
}

fn path() -> impl Strategy<Value = usize> {
    0..PATHS.len()
}

/// Random operations, weighted towards writes.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path(), 0..40_000u32, 0..20_000u32, any::<u8>())
            .prop_map(|(path, offset, len, byte)| Op::Write { path, offset, len, byte }),
        2 => (path(), 0..50_000u32).prop_map(|(path, len)| Op::Truncate { path, len }),
        2 => (path(), path()).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => path().prop_map(|path| Op::Unlink { path }),
        2 => path().prop_map(|path| Op::Mkdir { path }),
        1 => path().prop_map(|path| Op::Rmdir { path }),
        1 => (path(), path()).prop_map(|(path, target)| Op::Symlink { path, target }),
        1 => Just(Op::Remount),
        1 => (path(), 0..5_000u32, any::<u8>())
            .prop_map(|(path, len, byte)| Op::ExternalPut { path, len, byte }),
        1 => path().prop_map(|path| Op::ExternalDelete { path }),
    ]
}
