#![no_main]
//! CloudStack's and Exoscale's metadata tree (`providers::cloudstack::read_tree`, the flavor
//! chosen by the first byte's low bit) and the password server's answer
//! (`cloudstack::password::parse`, fed the last document). Input: a flavor byte, then
//! documents split at `\n--8<--\n`; each one's first line is its path below the API version
//! directory (`latest/`, `1.0/`), the rest its body.
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;
use preroot::providers::cloudstack::{self, password};
use preroot::providers::Input;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let flavor = if sel & 1 == 0 {
        cloudstack::CLOUDSTACK
    } else {
        preroot::providers::exoscale::FLAVOR
    };
    let docs = common::documents(rest, 64);
    if let Some(last) = docs.last() {
        if let password::Answer::Password(p) = password::parse(last) {
            assert!(!p.is_empty() && p.len() <= password::PASSWORD_MAX && !p.contains('\n'));
        }
    }
    let tree = common::path_tree(&docs, flavor.version);
    let state = common::state();
    let input = Input {
        tree: &tree,
        source: common::service_source(Access::Directory),
        state: &state,
        host_nics: Vec::new(),
    };
    if let Ok(ctx) = cloudstack::read_tree(&input, &flavor) {
        let _ = serde_json::to_vec(&ctx);
    }
});
