#![no_main]
//! Oracle's IMDS documents `instance/` and `vnics/` (split at `\n--8<--\n`; a missing second
//! one is an absent `vnics`), turned into a context (`providers::oracle::read`).
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 2);
    let state = common::state();
    let source = common::service_source(Access::Http);
    let vnics = docs.get(1).map(|d| (*d, "vnics"));
    if let Ok(ctx) =
        preroot::providers::oracle::read((docs[0], "instance"), vnics, source, &state, Vec::new())
    {
        let _ = serde_json::to_vec(&ctx);
    }
});
