//! Data at rest: the data directory is private to its user, and compiled
//! artifacts (machine code Orbit maps and runs) are never loaded from a
//! directory another user could write: there, anyone could put their own
//! code under another component's digest.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use orbit::{Orbit, RunStatus};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The only compiled artifact in `dir`.
fn artifact(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[tokio::test]
async fn the_data_directory_and_compiled_artifacts_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let orbit = Orbit::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700, "the data directory is made private");
    assert_eq!(mode(&dir.join("compiled")), 0o700);
    orbit.engine().load(&orbit_test_guests::bytes("echo")).unwrap();
    assert!(orbit.engine().wait_for_tier_ups(std::time::Duration::from_secs(300)), "Cranelift's artifact is written");
    assert_eq!(mode(&artifact(&dir.join("compiled"))), 0o600, "an artifact is readable by its user only");
}

/// Runs `guest`'s bytes through a fresh Orbit on `dir`.
async fn run(dir: &Path, guest: &str) -> orbit::Outcome {
    let orbit = Orbit::open(dir).unwrap();
    let inv = orbit::Invocation::new("marker").workspace(common::ws("default"));
    let out = orbit.engine().invoke_wasm(&orbit_test_guests::bytes(guest), inv).await.unwrap();
    // The run used baseline code when the cache missed; its artifact is
    // written by the background compile.
    assert!(orbit.engine().wait_for_tier_ups(std::time::Duration::from_secs(300)));
    out
}

#[tokio::test]
async fn an_artifact_planted_in_a_writable_directory_is_not_run() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let compiled = dir.join("compiled");
    // Compile echo, then plant its artifact under trap's digest: what an
    // attacker who could write the directory would do.
    let echo = run(&dir, "echo").await;
    assert_eq!(echo.output, b"marker");
    let planted = artifact(&compiled);
    let echo_digest = orbit::orbit_engine::digest(&orbit_test_guests::bytes("echo"));
    let trap_digest = orbit::orbit_engine::digest(&orbit_test_guests::bytes("trap"));
    let name = planted.file_name().unwrap().to_str().unwrap().replace(&echo_digest, &trap_digest);
    std::fs::copy(&planted, compiled.join(&name)).unwrap();

    // Control: in a private directory the cache is trusted, so the planted
    // code runs (this is why the directory must be private).
    let fooled = run(&dir, "trap").await;
    assert_eq!((fooled.record.status, fooled.output.as_slice()), (RunStatus::Succeeded, &b"marker"[..]));

    // Loosened (writable by others): opening makes it private again and
    // empties it, since anything in it may have been planted; trap is
    // compiled from its own bytes and traps.
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o777)).unwrap();
    let healed = run(&dir, "trap").await;
    assert_eq!(mode(&compiled), 0o700);
    assert_ne!(healed.record.status, RunStatus::Succeeded, "the planted echo did not run: {:?}", healed.record);
    assert_ne!(healed.output, b"marker");

    // Owned by another user (only root can arrange that here): nothing in
    // it is loaded, and nothing is written to it.
    if std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).ok() == Some(0) {
        std::fs::copy(&planted_copy(&compiled, &name), compiled.join(&name)).ok();
        let status = std::process::Command::new("chown").args(["65534"]).arg(&compiled).status().unwrap();
        assert!(status.success());
        let orbit = Orbit::open(&dir).unwrap();
        let inv = orbit::Invocation::new("marker").workspace(common::ws("default"));
        let trapped = orbit.engine().invoke_wasm(&orbit_test_guests::bytes("trap"), inv).await.unwrap();
        assert_ne!(trapped.record.status, RunStatus::Succeeded, "{:?}", trapped.record);
        assert!(!orbit.engine().is_cached(&orbit_test_guests::bytes("trap")), "an untrusted cache is not used");
    }
}

/// Plants echo's artifact again under `name` (after the directory was
/// emptied): compile echo into a private scratch cache and copy it.
fn planted_copy(_compiled: &Path, _name: &str) -> PathBuf {
    let scratch = tempfile::tempdir().unwrap().keep();
    let orbit = Orbit::open(&scratch).unwrap();
    orbit.engine().load(&orbit_test_guests::bytes("echo")).unwrap();
    assert!(orbit.engine().wait_for_tier_ups(std::time::Duration::from_secs(300)));
    artifact(&scratch.join("compiled"))
}
