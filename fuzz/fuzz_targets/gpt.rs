#![no_main]
//! GPT tables from raw sectors through the grow stage's reading and planning, with the
//! CRCs optionally recomputed so the fuzzer gets past them (see disk.rs for the input).
use libfuzzer_sys::fuzz_target;

#[path = "disk.rs"]
mod disk;

fuzz_target!(|data: &[u8]| disk::run(data, true));
