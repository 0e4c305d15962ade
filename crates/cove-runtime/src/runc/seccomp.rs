//! The sandbox's seccomp filter, compiled once per runtime instead of once
//! per sandbox.
//!
//! Handing the profile to runc in `config.json` makes every `runc run`
//! compile Docker's ~360 rules for three architectures with libseccomp:
//! ~10 ms of a ~35 ms create here (`bench/sandboxes`). So the runtime
//! compiles the same OCI profile with the same library once, at start
//! (`compile`), writes the BPF program into each sandbox's agent directory,
//! and the agent, PID 1, loads it before it does anything else (before it
//! starts a thread or accepts a connection; it exits if the load fails, so
//! a sandbox never runs without it). The filter is the one runc would have
//! built: same rules, same default action, same architectures. Differences
//! from runc: runc also patches the program so that syscalls newer than
//! libseccomp's table fail with ENOSYS instead of the default EPERM; here
//! they get EPERM. CRIU dumps and restores the loaded filter like any
//! other, so pause, resume and fork keep it.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

use crate::RuntimeError;

/// Docker's default profile in the OCI form (see `generated/README.md`).
pub const PROFILE: &str = include_str!("../../generated/seccomp_x86_64.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn bad(message: String) -> RuntimeError {
    RuntimeError::Unsupported(format!("seccomp profile: {message}"))
}

fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction, RuntimeError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        // EPERM, as runc does when the profile names no errno.
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(1) as i32),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => return Err(bad(format!("unsupported action {other}"))),
    })
}

fn arch(name: &str) -> Result<ScmpArch, RuntimeError> {
    Ok(match name {
        "SCMP_ARCH_X86_64" => ScmpArch::X8664,
        "SCMP_ARCH_X86" => ScmpArch::X86,
        "SCMP_ARCH_X32" => ScmpArch::X32,
        "SCMP_ARCH_AARCH64" => ScmpArch::Aarch64,
        "SCMP_ARCH_ARM" => ScmpArch::Arm,
        other => return Err(bad(format!("unsupported architecture {other}"))),
    })
}

fn compare(a: &Arg) -> Result<ScmpArgCompare, RuntimeError> {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // OCI puts the mask in `value` and the datum in `valueTwo`.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                a.index,
                ScmpCompareOp::MaskedEqual(a.value),
                a.value_two,
            ))
        }
        other => return Err(bad(format!("unsupported comparison {other}"))),
    };
    Ok(ScmpArgCompare::new(a.index, op, a.value))
}

/// Compiles an OCI `linux.seccomp` profile into a BPF program (an array
/// of `struct sock_filter` in the host's byte order), as runc would.
pub fn compile(profile_json: &str) -> Result<Vec<u8>, RuntimeError> {
    let p: Profile = serde_json::from_str(profile_json).map_err(|e| bad(e.to_string()))?;
    let default = action(&p.default_action, p.default_errno_ret)?;
    let lib = |what: &str, e: libseccomp::error::SeccompError| bad(format!("{what}: {e}"));
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib("init", e))?;
    for a in &p.architectures {
        let a = arch(a)?;
        // The native architecture is in every new context already.
        if a != ScmpArch::native() {
            ctx.add_arch(a).map_err(|e| lib("arch", e))?;
        }
    }
    for r in &p.syscalls {
        let act = action(&r.action, r.errno_ret)?;
        // libseccomp refuses a rule that repeats the default; runc skips it.
        if act == default {
            continue;
        }
        let conds = r.args.iter().map(compare).collect::<Result<Vec<_>, _>>()?;
        for name in &r.names {
            // Names this libseccomp does not know (newer syscalls, other
            // arches) are skipped, as runc skips them.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
                continue;
            };
            ctx.add_rule_conditional(act, nr, &conds)
                .map_err(|e| lib(name, e))?;
        }
    }
    // libseccomp 2.5 (Debian 12) exports to a file descriptor only.
    let fd = rustix::fs::memfd_create("cove-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).map_err(|e| lib("export", e))?;
    let mut out = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut out)?;
    if out.is_empty() || !out.len().is_multiple_of(8) {
        return Err(bad(format!("exported {} bytes", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_profile_compiles_to_whole_bpf_instructions() {
        let bpf = compile(PROFILE).unwrap();
        assert_eq!(bpf.len() % 8, 0);
        // Under the kernel's limit of 4096 instructions.
        assert!(
            bpf.len() / 8 > 100 && bpf.len() / 8 <= 4096,
            "{}",
            bpf.len() / 8
        );
    }

    #[test]
    fn unknown_actions_and_operators_are_refused_not_ignored() {
        let bad_action = r#"{"defaultAction":"SCMP_ACT_TRACE","syscalls":[]}"#;
        assert!(compile(bad_action).is_err());
        let bad_op = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#;
        assert!(compile(bad_op).is_err());
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let p = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","no_such_syscall_at_all"],"action":"SCMP_ACT_ALLOW"}]}"#;
        assert!(!compile(p).unwrap().is_empty());
    }
}
