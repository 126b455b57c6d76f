//! The fuzz smoke CI runs under `cargo test`: every target replays its committed corpus and regression inputs and
//! then a bounded number of seeded mutations of them (docs/fuzzing.md). `WARREN_FUZZ_SMOKE_RUNS` sets the number
//! of mutations per target, `WARREN_FUZZ_SMOKE_SEED` the seed; `WARREN_FUZZ_REPLAY=<file>` runs one saved input
//! through every target instead.

use warren_fuzz::alloc::{self, TrackingAlloc};
use warren_fuzz::{smoke, Target, TARGETS};

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Mutations per target when not set: a few seconds of a debug build each.
fn mutations(default: usize) -> usize {
    std::env::var("WARREN_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("WARREN_FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5741_5252_454E)
}

fn smoke(target: &Target, default_mutations: usize) {
    assert!(
        alloc::installed(),
        "the tracking allocator is not installed"
    );
    if let Ok(path) = std::env::var("WARREN_FUZZ_REPLAY") {
        // A relative path is taken from the repository root (cargo runs tests in the crate's directory).
        let path = smoke::fuzz_dir().join("..").join(path);
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (target.run)(&input);
        return;
    }
    match smoke::run(target, mutations(default_mutations), seed()) {
        Ok(report) => println!("{}: {report:?}", target.name),
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn frames_smoke() {
    smoke(&TARGETS[0], 20_000);
}

#[test]
fn methods_smoke() {
    smoke(&TARGETS[1], 100_000);
}

#[test]
fn content_smoke() {
    smoke(&TARGETS[2], 100_000);
}

#[test]
fn store_smoke() {
    smoke(&TARGETS[3], 1_000);
}

#[test]
fn every_dictionary_reads() {
    for target in &TARGETS {
        let words = smoke::dictionary(target).unwrap_or_else(|e| panic!("{e}"));
        assert!(!words.is_empty(), "{} has an empty dictionary", target.name);
    }
}
