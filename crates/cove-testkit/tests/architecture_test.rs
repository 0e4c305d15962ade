//! Architecture rules that are tests (STYLE.md §1): dependencies between cove's
//! crates point one way, `cove-api ← store/runtime/bucketfs/net ← server ← cove`,
//! and the test kit is only ever a dev-dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each cove crate, the cove crates it may depend on (normal and build deps).
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut m = BTreeMap::new();
    let mut put = |k: &'static str, v: &[&'static str]| {
        m.insert(k, v.iter().copied().collect::<BTreeSet<_>>());
    };
    put("cove-api", &[]);
    put("bucketfs", &[]);
    put("cove-store", &["cove-api"]);
    put("cove-net", &["cove-api"]);
    put("cove-runtime", &["cove-api", "cove-net"]);
    put("cove-agent", &["cove-api"]);
    put(
        "cove-server",
        &[
            "cove-api",
            "cove-store",
            "cove-runtime",
            "cove-net",
            "bucketfs",
        ],
    );
    put(
        "cove",
        &[
            "cove-api",
            "cove-store",
            "cove-runtime",
            "cove-net",
            "bucketfs",
            "cove-server",
        ],
    );
    put(
        "cove-testkit",
        &[
            "cove-api",
            "cove-store",
            "cove-runtime",
            "cove-net",
            "bucketfs",
            "cove-server",
        ],
    );
    m
}

#[test]
fn cove_crates_depend_only_downwards() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let allowed = allowed();
    let packages = meta["packages"].as_array().expect("packages array");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let mut violations = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(ok) = allowed.get(name) else {
            violations.push(format!("crate {name} has no rule in architecture_test.rs"));
            continue;
        };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default();
            if !names.contains(dep) {
                continue; // not a cove crate
            }
            let dev = d["kind"].as_str() == Some("dev");
            if dep == "cove-testkit" && !dev {
                violations.push(format!(
                    "{name} depends on cove-testkit outside dev-dependencies"
                ));
            }
            if !dev && dep != "cove-testkit" && !ok.contains(dep) {
                violations.push(format!("{name} → {dep} points the wrong way"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependency rules broken:\n{}",
        violations.join("\n")
    );
}
