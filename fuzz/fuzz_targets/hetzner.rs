#![no_main]
//! Hetzner's YAML `metadata` (with its network-config v1), the user data and the
//! `private-networks` list, split at `\n--8<--\n` (missing ones are absent), turned into a
//! context (`providers::hetzner::read`).
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 3);
    let state = common::state();
    let source = common::service_source(Access::Http);
    let private = docs.get(2).map(|d| (*d, "private-networks"));
    if let Ok(ctx) = preroot::providers::hetzner::read(
        (docs[0], "metadata"),
        docs.get(1).copied(),
        private,
        source,
        &state,
        Vec::new(),
    ) {
        let _ = serde_json::to_vec(&ctx);
    }
});
