#![no_main]
//! meta_data.json, network_data.json and vendor_data.json of a config drive.
use libfuzzer_sys::fuzz_target;
use preroot::context::Platform;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 3);
    let names = [
        "openstack/latest/meta_data.json",
        "openstack/latest/network_data.json",
        "openstack/latest/vendor_data.json",
    ];
    let files: Vec<(&str, &[u8])> = names.iter().copied().zip(docs).collect();
    common::read(Platform::Openstack, &files);
});
