//! The WIT and the guest SDKs are embedded with `include_dir!`, which does
//! not tell cargo to watch them: a change to any must rebuild this crate
//! (and change the build cache's key).
fn main() {
    println!("cargo:rerun-if-changed=../../wit");
    println!("cargo:rerun-if-changed=../../guest-sdk/python/orbit");
    println!("cargo:rerun-if-changed=../../guest-sdk/js/src");
    println!("cargo:rerun-if-changed=../../guest-sdk/js/package.json");
    println!("cargo:rerun-if-changed=../../guest-sdk/js/toolchain/package.json");
    println!("cargo:rerun-if-changed=../../guest-sdk/js/toolchain/package-lock.json");
}
