#![no_main]
//! An OpenNebula context.sh (parsed, never run).
use libfuzzer_sys::fuzz_target;
use preroot::context::SourceKind;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(SourceKind::OpennebulaContext, &[("context.sh", data)]);
});
