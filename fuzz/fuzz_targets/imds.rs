#![no_main]
//! Azure's IMDS instance document (`/metadata/instance?api-version=2021-02-01`) as fetched
//! bytes: the parser, then the context the fetch phase makes of it, matched to two host NICs.
//! Every NIC kept has a normalized MAC, counts stay within their caps, and the context
//! serializes.
use libfuzzer_sys::fuzz_target;
use preroot::caps;
use preroot::context::{Access, HostNic};
use preroot::providers::azure::{self, imds};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(md) = imds::parse(data) {
        assert!(md.nics.len() <= caps::LINKS.max);
        for nic in &md.nics {
            assert_eq!(preroot::context::normalize_mac(&nic.mac).as_deref(), Some(nic.mac.as_str()));
            assert!(nic.ipv4.len() <= caps::ADDRESSES.max && nic.ipv6.len() <= caps::ADDRESSES.max);
        }
    }
    let source = common::service_source(Access::Http);
    let nics = ["00:0d:3a:04:75:98", "22:0d:3a:04:75:98"]
        .iter()
        .enumerate()
        .map(|(i, m)| HostNic { name: format!("eth{i}"), mac: (*m).into() })
        .collect();
    if let Ok(mut ctx) = azure::imds_context(data, "fuzz", source, nics) {
        ctx.match_nics(false);
        let _ = serde_json::to_vec(&ctx);
    }
});
