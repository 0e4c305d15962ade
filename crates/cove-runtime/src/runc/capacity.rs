//! `capacity`: memory from `/proc/meminfo`, CPUs from the scheduler's
//! affinity, the number of sandboxes, the images present.

use super::layout::sandboxes_dir;
use super::{image, Inner};
use crate::{HostCapacity, RuntimeError};

/// `MemTotal` and `MemAvailable` in MiB.
pub fn meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

pub fn capacity(inner: &Inner) -> Result<HostCapacity, RuntimeError> {
    let (total_mib, free_mib) = meminfo(&std::fs::read_to_string("/proc/meminfo")?);
    let vcpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let sandbox_count = std::fs::read_dir(sandboxes_dir(&inner.config.state_dir))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("sb_"))
                .count() as u32
        })
        .unwrap_or(0);
    Ok(HostCapacity {
        total_mib,
        free_mib,
        vcpus,
        sandbox_count,
        images: image::available(&inner.config.images_dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed_in_mib() {
        let t = "MemTotal:       24684312 kB\nMemFree:        1 kB\nMemAvailable:   23167752 kB\n";
        assert_eq!(meminfo(t), (24105, 22624));
    }
}
