//! What checkpoint, restore and fork share about CRIU: its option file
//! (named by the `org.criu.config` annotation of every sandbox's config),
//! runc's global flags for it, how a finished dump is recognised and how big
//! a checkpoint is. Knows nothing of the order of a lifecycle operation.

use std::ffi::OsString;
use std::path::Path;

use super::layout::SandboxPaths;
use super::Inner;
use crate::RuntimeError;

/// CRIU's options for every sandbox:
/// - `network-lock nftables`: the default locks with iptables, which is not
///   installed here;
/// - `tcp-close`: established TCP connections are restored closed (the
///   veth is unplugged for the dump and a fork gets another address, so
///   they could not continue anyway); listening sockets are kept;
/// - `skip-in-flight`: connections not yet accepted are dropped, not fatal;
/// - `file-locks`: flock/posix locks of the sandbox's processes are kept.
pub const CONF: &str = "network-lock nftables\ntcp-close\nskip-in-flight\nfile-locks\n";

/// Writes the sandbox's `criu.conf`.
pub fn write_conf(paths: &SandboxPaths) -> std::io::Result<()> {
    std::fs::write(paths.criu_conf(), CONF)
}

/// runc's global flags with `--criu`, then `rest`; an error when the CRIU
/// binary is missing (checkpoint and restore cannot work without it).
pub fn runc_args(
    inner: &Inner,
    paths: &SandboxPaths,
    rest: Vec<OsString>,
) -> Result<Vec<OsString>, RuntimeError> {
    require(inner)?;
    let mut args: Vec<OsString> = vec!["--criu".into(), inner.config.criu_bin.clone().into()];
    args.extend(inner.runc_args(paths, rest));
    Ok(args)
}

/// An error unless the configured CRIU binary exists.
pub fn require(inner: &Inner) -> Result<(), RuntimeError> {
    let criu = &inner.config.criu_bin;
    if !criu.is_file() {
        return Err(RuntimeError::Unsupported(format!(
            "CRIU not found at {} (scripts/lib/criu.sh builds CRIU 4.x; set COVE_CRIU_BIN)",
            criu.display()
        )));
    }
    Ok(())
}

/// Removes CRIU's nftables network lock (`table inet CRIU-<uuid>`, which
/// drops every packet, loopback included) from the network namespace of
/// `pid`. CRIU removes it itself when a dump or restore ends; a CRIU killed
/// half-way (a crash of the host's services) leaves it behind.
pub fn drop_network_lock(inner: &Inner, pid: u32) -> Result<(), RuntimeError> {
    let nsenter = Path::new("nsenter");
    let base: Vec<OsString> = vec![
        "-t".into(),
        pid.to_string().into(),
        "--net".into(),
        "nft".into(),
    ];
    let mut list = base.clone();
    list.extend(["list".into(), "tables".into()]);
    let out = inner.sys.run(nsenter, &list)?;
    if !out.success() {
        return Err(RuntimeError::Io(std::io::Error::other(format!(
            "nft list tables: {}",
            out.stderr.trim()
        ))));
    }
    for (family, name) in lock_tables(&out.stdout) {
        let mut del = base.clone();
        del.extend([
            "delete".into(),
            "table".into(),
            family.as_str().into(),
            name.as_str().into(),
        ]);
        let out = inner.sys.run(nsenter, &del)?;
        if !out.success() {
            return Err(RuntimeError::Io(std::io::Error::other(format!(
                "nft delete table {family} {name}: {}",
                out.stderr.trim()
            ))));
        }
    }
    Ok(())
}

/// CRIU's lock tables in `nft list tables` output.
fn lock_tables(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("table"), Some(family), Some(name)) if name.starts_with("CRIU-") => {
                    Some((family.to_string(), name.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Whether the dump in `dir` finished: CRIU writes this line last to the
/// `dump.log` runc asks for, after every image is written.
pub fn dump_finished(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("dump.log"))
        .map(|log| log.contains("Dumping finished successfully"))
        .unwrap_or(false)
}

/// Whether the dump in `dir` got past writing its images: CRIU closes and
/// flushes every image, then runs the post-dump scripts (logged at the
/// debug level runc asks for), and only then kills the dumped tasks.
pub fn dump_images_written(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("dump.log"))
        .map(|log| {
            log.contains("Running post-dump scripts")
                || log.contains("Dumping finished successfully")
        })
        .unwrap_or(false)
}

/// Whether the restore logged in `work` finished: CRIU writes this line
/// once every task is restored and resumed. A running init alone proves
/// nothing: a CRIU killed half-way leaves a tree that is partly restored.
pub fn restore_finished(work: &Path) -> bool {
    std::fs::read_to_string(work.join("restore.log"))
        .map(|log| log.contains("Restore finished successfully"))
        .unwrap_or(false)
}

/// The last lines of a CRIU log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error"))
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// Bytes allocated on disk by the files of `dir` (not recursive: CRIU
/// writes a flat directory).
pub fn dir_size(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        total += e?.metadata()?.blocks() * 512;
    }
    Ok(total)
}

/// Memory charged to the sandbox's cgroup (v1 memory controller), bytes.
pub fn cgroup_memory(cgroup_parent: &str, id: &str) -> Option<u64> {
    let p = Path::new("/sys/fs/cgroup/memory")
        .join(cgroup_parent)
        .join(id)
        .join("memory.usage_in_bytes");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_locks_with_nftables_and_closes_tcp() {
        let opts: Vec<&str> = CONF.lines().collect();
        assert!(opts.contains(&"network-lock nftables"));
        assert!(opts.contains(&"tcp-close"));
        assert!(!opts.contains(&"tcp-established"));
    }

    #[test]
    fn only_criu_lock_tables_are_found() {
        let listing = "table inet CRIU-874bb51d-c030-4813-bc\ntable inet cove\ntable ip nat\n";
        assert_eq!(
            lock_tables(listing),
            [("inet".to_string(), "CRIU-874bb51d-c030-4813-bc".to_string())]
        );
    }

    #[test]
    fn a_dump_is_finished_only_when_criu_said_so() {
        let d = tempfile::tempdir().unwrap();
        assert!(!dump_finished(d.path()));
        std::fs::write(d.path().join("dump.log"), "(00.1) Dumping path for -1 fd\n").unwrap();
        assert!(!dump_finished(d.path()));
        std::fs::write(
            d.path().join("dump.log"),
            "(00.2) Writing stats\n(00.2) Dumping finished successfully\n",
        )
        .unwrap();
        assert!(dump_finished(d.path()));
    }
}
