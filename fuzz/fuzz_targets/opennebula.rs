#![no_main]
//! An OpenNebula context.sh (parsed, never run).
use libfuzzer_sys::fuzz_target;
use preroot::context::Platform;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(Platform::Opennebula, &[("context.sh", data)]);
});
