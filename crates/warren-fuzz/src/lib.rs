//! Fuzz targets for Warren's parsers, one module each, and the stable fuzz smoke that runs them under `cargo test`.
//! docs/fuzzing.md says how to run them for hours with libFuzzer, how the corpus was captured and what CI runs.
//!
//! Each target is a function from arbitrary bytes that panics when the parser breaks its contract, not only when it
//! panics itself: what decodes re-encodes to a fixpoint, errors carry the protocol's reply code, field tables that
//! decode nest no deeper than the bound, recovery cuts or quarantines what it cannot read and never refuses to open.
//! - [`frames`]: `FrameSplitter` over a byte stream cut into arbitrary chunks, against a reference model;
//! - [`methods`]: `decode_method`, and `parse_publish` against amq-protocol's decoder;
//! - [`content`]: content headers, basic properties and field tables, with the lazy property readers;
//! - [`store`]: a store directory of arbitrary WAL and segment files through `Store::open` on the simulated file
//!   system, then reads, retirement and a second recovery.
//!
//! The same functions run in two harnesses: `fuzz/` (cargo-fuzz and libFuzzer, nightly, coverage-guided) and
//! [`smoke`] (stable, no extra dependency: the committed corpus replayed, then seeded mutations of it), which
//! `tests/smoke.rs` runs in CI. [`tables`] holds what the protocol targets share about field tables, [`alloc`] the
//! allocation bound the smoke checks, [`mutate`] the smoke's mutator and its reading of the libFuzzer dictionaries.

pub mod alloc;
pub mod content;
pub mod frames;
pub mod methods;
pub mod mutate;
pub mod seeds;
pub mod smoke;
pub mod store;
pub mod tables;

mod input;

/// One fuzz target: its name (the directory of its corpus and dictionary under `fuzz/`), the function that checks
/// one input, and the largest single allocation the input may cause.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The target's name: `fuzz/corpus/<name>/`, `fuzz/dict/<name>.dict`, `fuzz/fuzz_targets/<name>.rs`.
    pub name: &'static str,
    /// Checks one input; panics when the parser breaks its contract.
    pub run: fn(&[u8]),
    /// The largest single allocation one input may make the parser do, in bytes: a bound in the input's length and
    /// the limits it negotiates, never in a length field the input declares.
    pub alloc_limit: fn(&[u8]) -> usize,
}

/// Every target, in the order docs/fuzzing.md lists them.
pub const TARGETS: [Target; 4] = [
    frames::TARGET,
    methods::TARGET,
    content::TARGET,
    store::TARGET,
];

/// Locks a mutex, ignoring poisoning (a target that panicked under it is reported anyway).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
