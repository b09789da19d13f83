#![no_main]
//! DigitalOcean's `metadata/v1.json` as fetched bytes, turned into a context the way the
//! fetch phase does (`providers::digitalocean::read`).
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let state = common::state();
    let source = common::service_source(Access::Http);
    if let Ok(ctx) =
        preroot::providers::digitalocean::read(data, "fuzz", source, &state, Vec::new())
    {
        let _ = serde_json::to_vec(&ctx);
    }
});
