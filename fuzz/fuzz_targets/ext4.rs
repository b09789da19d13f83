#![no_main]
//! A whole ext2/3/4 image: open it, list the tree two levels down and read every file found.
use libfuzzer_sys::fuzz_target;
use preroot::media::ext4::Ext4Tree;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Ext4Tree::open(&common::image(data)) {
        common::walk(&tree);
    }
});
