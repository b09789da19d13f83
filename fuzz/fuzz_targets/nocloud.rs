#![no_main]
//! A NoCloud seed: meta-data and network-config (YAML).
use libfuzzer_sys::fuzz_target;
use preroot::context::Platform;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 2);
    let files: Vec<(&str, &[u8])> = ["meta-data", "network-config"]
        .into_iter()
        .zip(docs)
        .collect();
    common::read(Platform::Nocloud, &files);
});
