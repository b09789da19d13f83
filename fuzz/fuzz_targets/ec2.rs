#![no_main]
//! The EC2 IMDS tree (`latest/meta-data/...`, `latest/user-data`) as the fetch phase reads it.
//! Input: documents split at `\n--8<--\n`; each one's first line is its path below
//! `latest/`, the rest its body (a directory is listed from the paths below it).
use libfuzzer_sys::fuzz_target;
use preroot::context::{Medium, Platform, Source, SourceKind};
use preroot::media::MemTree;
use preroot::providers::Input;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut tree = MemTree::new();
    for doc in common::documents(data, 256) {
        let (path, body) = match doc.iter().position(|b| *b == b'\n') {
            Some(at) => (&doc[..at], &doc[at + 1..]),
            None => (doc, &[][..]),
        };
        if let Ok(path) = std::str::from_utf8(path) {
            tree.insert(&format!("latest/{path}"), body.to_vec());
        }
    }
    let state = common::state();
    let input = Input {
        tree: &tree,
        source: Source {
            kind: SourceKind::MetadataService,
            medium: Medium::Directory,
            location: "fuzz".into(),
            partition_of: None,
        },
        state: &state,
        host_nics: Vec::new(),
    };
    if let Ok(ctx) = preroot::providers::ec2::read_tree(&input, Platform::Ec2) {
        let _ = serde_json::to_vec(&ctx);
    }
});
