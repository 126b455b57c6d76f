//! libFuzzer target: content headers, basic properties and field tables (the contract is in crates/warren-fuzz/src/content.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| (warren_fuzz::content::TARGET.run)(data));
