//! Loads the sandbox's seccomp filter, a BPF program the host compiled
//! once from Docker's profile (cove-runtime `runc/seccomp.rs` says why the
//! agent loads it and not runc). Called first thing in `main`, while the
//! agent is still one thread: every thread and process it makes later
//! inherits the filter. The program file is removed after the load; it is
//! of no use to anyone in the sandbox.

use std::path::Path;

/// Largest program the kernel takes (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

/// Decodes `struct sock_filter` entries (8 bytes each, host byte order).
fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > MAX_INSNS {
        return Err(format!(
            "not a BPF program of whole instructions ({} bytes)",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Loads the program at `path` as a seccomp filter of this process.
pub fn load(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut insns = decode(&bytes)?;
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_mut_ptr(),
    };
    // runc set no_new_privs already (`noNewPrivileges`); setting it again
    // is harmless and makes the load work without CAP_SYS_ADMIN anyway.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel
    // copies the program and validates it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(format!("seccomp: {}", std::io::Error::last_os_error()));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_programs_within_the_kernel_limit_decode() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0u8; 12]).is_err());
        assert!(decode(&vec![0u8; 8 * (MAX_INSNS + 1)]).is_err());
        let one = decode(&[0x06, 0x00, 0, 0, 0x00, 0x00, 0xff, 0x7f]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].code, 0x06);
        assert_eq!(one[0].k, 0x7fff_0000);
    }

    #[test]
    fn a_loaded_filter_applies_to_the_process_that_loads_it() {
        // In a child: the filter stays with the process that loads it.
        // Program: return ERRNO(13) for getppid (110), else ALLOW.
        let insn = |code: u16, jt: u8, jf: u8, k: u32| {
            let mut v = code.to_ne_bytes().to_vec();
            v.extend([jt, jf]);
            v.extend(k.to_ne_bytes());
            v
        };
        let mut prog = Vec::new();
        prog.extend(insn(0x20, 0, 0, 0)); // ld [nr]
        prog.extend(insn(0x15, 0, 1, 110)); // jeq getppid
        prog.extend(insn(0x06, 0, 0, 0x0005_0000 | 13)); // ret ERRNO(EACCES)
        prog.extend(insn(0x06, 0, 0, 0x7fff_0000)); // ret ALLOW
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bpf");
        std::fs::write(&path, &prog).unwrap();
        // SAFETY: the child only calls async-signal-safe functions and
        // exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = match load(&path) {
                // SAFETY: plain syscalls.
                Ok(()) => unsafe {
                    let r = libc::syscall(libc::SYS_getppid);
                    let errno = *libc::__errno_location();
                    if r == -1 && errno == 13 && libc::getpid() > 0 {
                        0
                    } else {
                        1
                    }
                },
                Err(_) => 2,
            };
            // SAFETY: leaves the forked child without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
        assert!(!path.exists(), "the program file is removed after the load");
    }
}
