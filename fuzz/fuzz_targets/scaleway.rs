#![no_main]
//! Scaleway's `conf?format=json` and its user data (split at `\n--8<--\n`), turned into a
//! context (`providers::scaleway::read`) on a host with two NICs, so the static IPv6 address
//! lands on a link.
use libfuzzer_sys::fuzz_target;
use preroot::context::{Access, HostNic};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 2);
    let state = common::state();
    let source = common::service_source(Access::Http);
    let nics = vec![
        HostNic {
            name: "ens3".into(),
            mac: "de:00:00:00:00:02".into(),
        },
        HostNic {
            name: "ens2".into(),
            mac: "de:00:00:00:00:01".into(),
        },
    ];
    if let Ok(ctx) = preroot::providers::scaleway::read(
        (docs[0], "conf"),
        docs.get(1).copied(),
        None,
        source,
        &state,
        nics,
    ) {
        let _ = serde_json::to_vec(&ctx);
    }
});
