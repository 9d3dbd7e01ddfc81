//! Compiles the vendor root public keys into the crate: every `root-*.pub` of `keys/`, or of
//! the directory named by the build-time variable `SIPMETER_ROOT_KEYS_DIR` (a vendor building
//! its own binary with its own roots). There is no run-time way to add a root.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=SIPMETER_ROOT_KEYS_DIR");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = std::env::var_os("SIPMETER_ROOT_KEYS_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { manifest.join(d) })
        .unwrap_or_else(|| manifest.join("keys"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "SIPMETER_ROOT_KEYS_DIR: cannot read the root key directory {}: {e}",
            dir.display()
        )
    });
    let mut keys: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("root-") && n.ends_with(".pub"))
        })
        .collect();
    keys.sort();
    assert!(
        !keys.is_empty(),
        "no root-*.pub in {}: a binary without a vendor root could never accept a license",
        dir.display()
    );
    let mut out = String::from(
        "/// The vendor root public keys, armored, compiled in at build time.\nconst ROOT_KEYS: &[&str] = &[\n",
    );
    for k in &keys {
        println!("cargo:rerun-if-changed={}", k.display());
        out.push_str(&format!(
            "    include_str!({:?}),\n",
            k.display().to_string()
        ));
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("root_keys.rs");
    std::fs::write(&target, out).expect("OUT_DIR is writable");
}
