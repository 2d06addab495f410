//! The WIT and the Python SDK are embedded with `include_dir!`, which does
//! not tell cargo to watch them: a change to either must rebuild this crate
//! (and change the build cache's key).
fn main() {
    println!("cargo:rerun-if-changed=../../wit");
    println!("cargo:rerun-if-changed=../../guest-sdk/python/orbit");
}
