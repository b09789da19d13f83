#![no_main]
//! A whole image: open it, list the tree two levels down and read every file found.
use libfuzzer_sys::fuzz_target;
use preroot::media::{iso9660::IsoTree, Tree};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::image(data);
    if let Ok(tree) = IsoTree::open(&path) {
        for dir in ["", "openstack", "openstack/latest"] {
            if let Ok(Some(names)) = tree.list(dir) {
                for name in names.iter().take(64) {
                    let file = if dir.is_empty() {
                        name.clone()
                    } else {
                        format!("{dir}/{name}")
                    };
                    let _ = tree.read(&file, 1 << 20);
                }
            }
        }
    }
});
