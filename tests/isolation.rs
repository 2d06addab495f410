//! A pooled memory slot never shows one run's bytes to the next run in it,
//! whatever part of the memory the pooling allocator keeps resident
//! (`EngineConfig::keep_resident_bytes`: zeroed or restored with `memset`)
//! and whatever part it hands back to the kernel (`madvise`).
//!
//! The `residue` fixture reads its static data, a zeroed heap allocation
//! and freshly grown pages before writing them, then marks them all. With
//! one run slot, every run after the first gets the memory slot the run
//! before it marked.

use orbit::{Invocation, Orbit, OrbitConfig, RunStatus};

/// Bytes the fixture marks in each run: two 64 KiB statics, a 1.5 MiB heap
/// allocation and 48 grown 64 KiB pages.
const MARKED: usize = 2 * (64 << 10) + (3 << 19) + 48 * (64 << 10);

async fn residue_runs(keep_resident_bytes: usize, runs: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    config.engine.keep_resident_bytes = keep_resident_bytes;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let component = orbit.engine().load(&orbit_test_guests::bytes("residue")).unwrap();
    let mut answers = Vec::new();
    for _ in 0..runs {
        let out = orbit.engine().invoke(&component, Invocation::new("")).await.unwrap();
        assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record.error);
        answers.push(out.output_text());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_memory_slot_starts_from_the_image_whatever_is_kept_resident() {
    let clean = format!("seeded:0 zeroed:0 heap:0 grown:0 written:{MARKED}");
    // Nothing resident (every page handed back with madvise); 64 KiB,
    // which ends inside the fixture's stack; 2 MiB (the default), which
    // ends inside its heap; 8 MiB, past the end of its grown pages.
    for keep in [0, 64 << 10, 2 << 20, 8 << 20] {
        let answers = residue_runs(keep, 4).await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer, &clean, "keep_resident_bytes {keep}, run {i}");
        }
    }
}
