#![no_main]
//! A whole image: open it, list the tree two levels down and read every file found.
use libfuzzer_sys::fuzz_target;
use preroot::media::fat::FatTree;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = FatTree::open(&common::image(data)) {
        common::walk(&tree);
    }
});
