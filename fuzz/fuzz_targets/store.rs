//! libFuzzer target: WAL and segment files through Store::open on the simulated file system (the contract is in crates/warren-fuzz/src/store.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| (warren_fuzz::store::TARGET.run)(data));
