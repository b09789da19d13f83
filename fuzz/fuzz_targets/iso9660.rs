#![no_main]
//! A whole image: open it, list the tree two levels down and read every file found.
use libfuzzer_sys::fuzz_target;
use preroot::media::iso9660::IsoTree;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = IsoTree::open(&common::image(data)) {
        common::walk(&tree);
    }
});
