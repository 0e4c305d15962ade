//! The shape catalog: the sandbox sizes this server offers. Rootfs names come
//! from the runtime (`capacity().images`), since only the host knows which
//! images it has.

use cove_api::catalog::Shape;

/// The rootfs used when a create names none.
pub const DEFAULT_ROOTFS: &str = "devbox:1";
/// Disk size of every shape unless the request sets `disk_mib`.
pub const DEFAULT_DISK_MIB: u64 = 10_240;

/// Every shape, smallest first.
pub fn shapes() -> Vec<Shape> {
    [
        ("s-1vcpu-256mb", 1, 256),
        ("s-1vcpu-512mb", 1, 512),
        ("s-1vcpu-1gb", 1, 1024),
        ("s-2vcpu-2gb", 2, 2048),
        ("s-4vcpu-4gb", 4, 4096),
    ]
    .into_iter()
    .map(|(id, vcpu, mem_mib)| Shape {
        id: id.to_owned(),
        vcpu,
        mem_mib,
        default_disk_mib: DEFAULT_DISK_MIB,
        cpu_quota_pct: None,
    })
    .collect()
}

/// The shape with this id.
pub fn shape(id: &str) -> Option<Shape> {
    shapes().into_iter().find(|s| s.id == id)
}

/// Process limit of a sandbox: enough for builds, low enough to stop a fork bomb.
pub fn pids_limit(shape: &Shape) -> u32 {
    512 * shape.vcpu.max(1)
}
