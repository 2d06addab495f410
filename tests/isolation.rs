//! A pooled memory slot never shows one run's bytes to the next run in it,
//! whatever part of the memory the pooling allocator keeps resident
//! (`EngineConfig::keep_resident_bytes`: restored from the memory image or
//! zeroed with `memset`) and whatever part it hands back to the kernel
//! (`madvise`).
//!
//! The `residue` fixture reads the bottom of its stack, its static data and
//! 3 MiB of freshly grown pages before writing them, then marks them all.
//! With one run slot, every run after the first gets the memory slot the
//! run before it marked (checked with wasmtime's pool metrics).

use orbit::{Invocation, LoadedComponent, Orbit, OrbitConfig, RunStatus};

/// Bytes the fixture marks in each run: 124 KiB of stack, two 64 KiB
/// statics and 48 grown 64 KiB pages.
const MARKED: usize = (124 << 10) + 2 * (64 << 10) + 48 * (64 << 10);

/// One engine with one run slot, Cranelift only (tiering would run the
/// first run from the baseline compiler's own pool).
fn one_slot(keep_resident_bytes: usize) -> (tempfile::TempDir, Orbit) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    config.engine.tiered_compilation = false;
    config.engine.keep_resident_bytes = keep_resident_bytes;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    (dir, orbit)
}

/// One run of `component` (the fixture, or a `variant` of it): its answer.
async fn residue(orbit: &Orbit, component: &LoadedComponent, input: &str) -> String {
    let out = orbit.engine().invoke(component, Invocation::new(input)).await.unwrap();
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record.error);
    out.output_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_memory_slot_starts_from_the_image_whatever_is_kept_resident() {
    let clean = format!("stack:0 seeded:0 zeroed:0 grown:0 written:{MARKED}");
    // Nothing resident (every page handed back with madvise); 64 KiB,
    // which ends inside the stack region read; 2 MiB (the default), which
    // ends inside the grown pages; 8 MiB, past their end.
    for keep in [0, 64 << 10, 2 << 20, 8 << 20] {
        let (_dir, orbit) = one_slot(keep);
        let component = orbit.engine().load(&orbit_test_guests::bytes("residue")).unwrap();
        for run in 0..4 {
            assert_eq!(residue(&orbit, &component, "").await, clean, "keep_resident_bytes {keep}, run {run}");
            // The run's memory went back to the pool as its one warm slot,
            // keeping resident what the setting says.
            let pool = orbit.engine().wasmtime().pooling_allocator_metrics().expect("the pooling allocator");
            assert_eq!(pool.unused_warm_memories(), 1, "keep_resident_bytes {keep}, run {run}");
            assert_eq!(pool.unused_memory_bytes_resident() > 0, keep > 0, "keep_resident_bytes {keep}, run {run}");
        }
    }
}

/// A copy of the component whose static data starts as `seed` instead of
/// `0x5A` (the fixture's 64 KiB run of it in the data segment, rewritten in
/// place), so its memory image differs from every other copy's; and so a
/// component of its own to Orbit, which caches loads by digest.
fn variant(wasm: &[u8], seed: u8) -> Vec<u8> {
    let run = vec![0x5A; 64 << 10];
    let at = wasm.windows(run.len()).position(|w| w == run.as_slice()).expect("the fixture's seeded static");
    assert!(wasm.get(at + run.len()) != Some(&0x5A), "the seeded static is exactly 64 KiB");
    let mut out = wasm.to_vec();
    out[at..at + run.len()].fill(seed);
    out
}

/// Three components with different memory images take turns on a pool of
/// two memory slots (one run slot): from the third run on, each run gets
/// the slot a different component used last (no slot is cold any more, so
/// the least recently used one is taken), which is the case between
/// tenants. Each must see its own image, and no byte of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_slot_used_by_another_component_starts_from_its_own_image() {
    let clean = format!("stack:0 seeded:0 zeroed:0 grown:0 written:{MARKED}");
    let wasm = orbit_test_guests::bytes("residue");
    let seeds = [0x11u8, 0x22, 0x33];
    for keep in [0, 2 << 20] {
        let (_dir, orbit) = one_slot(keep);
        let components: Vec<_> = seeds.iter().map(|&s| orbit.engine().load(&variant(&wasm, s)).unwrap()).collect();
        for run in 0..9 {
            let answer = residue(&orbit, &components[run % 3], &format!("seed={}", seeds[run % 3])).await;
            assert_eq!(answer, clean, "keep_resident_bytes {keep}, run {run}");
        }
        // Both memory slots were used, and both are warm.
        let pool = orbit.engine().wasmtime().pooling_allocator_metrics().expect("the pooling allocator");
        assert_eq!(pool.unused_warm_memories(), 2, "keep_resident_bytes {keep}");
    }
    // The seed is checked: a copy told the wrong one counts its whole static.
    let (_dir, orbit) = one_slot(2 << 20);
    let component = orbit.engine().load(&variant(&wasm, 0x11)).unwrap();
    let answer = residue(&orbit, &component, "seed=34").await;
    assert!(answer.contains(&format!("seeded:{}", 64 << 10)), "{answer}");
}

/// The negative control: read again within one run, after the marks and
/// with no reset in between, every byte of every region is foreign. So a
/// clean answer above is the host's reset, not a blind check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_sees_every_byte_left_behind() {
    let (_dir, orbit) = one_slot(2 << 20);
    let component = orbit.engine().load(&orbit_test_guests::bytes("residue")).unwrap();
    let all =
        format!("stack:{} seeded:{} zeroed:{} grown:{} written:{MARKED}", 124 << 10, 64 << 10, 64 << 10, 48 << 16);
    assert_eq!(residue(&orbit, &component, "twice").await, all);
}
