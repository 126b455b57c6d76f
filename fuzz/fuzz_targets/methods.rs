//! libFuzzer target: decode_method, and parse_publish against amq-protocol (the contract is in crates/warren-fuzz/src/methods.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| (warren_fuzz::methods::TARGET.run)(data));
