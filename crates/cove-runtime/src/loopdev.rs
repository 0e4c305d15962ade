//! Loop devices through the kernel's ioctls (`LOOP_CTL_GET_FREE`,
//! `LOOP_CONFIGURE`) instead of `losetup`: one syscall pair instead of a
//! fork+exec on the create path. Autoclear frees the device when the last
//! opener (the ext4 mount) goes away, so unmounting is the whole cleanup.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches `file` to a free loop device. Returns its path and an open fd
/// on it: keep the fd until the device is mounted, or autoclear detaches it.
pub fn attach(file: &Path) -> std::io::Result<(PathBuf, OwnedFd)> {
    let ctl = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let backing = rustix::fs::open(file, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    // Another process may take the same free device between GET_FREE and
    // CONFIGURE (EBUSY): ask again.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let mut name = [0u8; 64];
        let s = file.as_os_str().as_encoded_bytes();
        let keep = s.len().min(63);
        name[..keep].copy_from_slice(&s[s.len() - keep..]);
        let cfg = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `cfg` is a valid `struct loop_config` that outlives the call;
        // the kernel only reads it.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
        if r == 0 {
            return Ok((path, dev));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err);
        }
    }
    Err(std::io::Error::other("no free loop device after 16 tries"))
}

/// Makes loop device `dev` re-read its backing file's size (the file grew).
pub fn set_capacity(dev: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(dev, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    // SAFETY: LOOP_SET_CAPACITY takes no argument; `fd` is an open loop device.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_SET_CAPACITY, 0) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
