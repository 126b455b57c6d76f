//! libFuzzer target: FrameSplitter over an arbitrarily chunked byte stream (the contract is in crates/warren-fuzz/src/frames.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| (warren_fuzz::frames::TARGET.run)(data));
