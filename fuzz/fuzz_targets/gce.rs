#![no_main]
//! The GCE recursive metadata document (`computeMetadata/v1/?recursive=true&alt=json`) as
//! fetched bytes, turned into a context the way the fetch phase does.
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let state = common::state();
    let source = common::service_source(Access::Directory);
    if let Ok(ctx) = preroot::providers::gce::read(data, "fuzz", source, &state, Vec::new()) {
        let _ = serde_json::to_vec(&ctx);
    }
});
