#![no_main]
//! MBR tables and EBR chains from raw sectors through the grow stage's reading and planning
//! (see disk.rs for the input).
use libfuzzer_sys::fuzz_target;

#[path = "disk.rs"]
mod disk;

fuzz_target!(|data: &[u8]| disk::run(data, false));
