#![no_main]
//! Alibaba's EC2-shaped tree read with its flavor (named key directories, its extra leaves:
//! `providers::ec2::read_tree_as` with `alibaba::FLAVOR`). Input: documents split at
//! `\n--8<--\n`; each one's first line is its path below `latest/`, the rest its body (a
//! directory is listed from the paths below it).
use libfuzzer_sys::fuzz_target;
use preroot::context::Access;
use preroot::providers::Input;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let tree = common::path_tree(&common::documents(data, 256), "latest");
    let state = common::state();
    let input = Input {
        tree: &tree,
        source: common::service_source(Access::Directory),
        state: &state,
        host_nics: Vec::new(),
    };
    if let Ok(ctx) =
        preroot::providers::ec2::read_tree_as(&input, &preroot::providers::alibaba::FLAVOR)
    {
        let _ = serde_json::to_vec(&ctx);
    }
});
