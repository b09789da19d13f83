#![no_main]
//! A UDF image, given sparsely so that inputs stay small (the anchor is at sector 256, so a
//! real image is over 512 KiB of mostly zeros): records of a 2-byte little-endian sector
//! number (taken modulo 1024) and the 2048 bytes of that sector (a short last record is
//! zero-filled); every other sector is zero, and the image ends after the highest sector
//! given (at least sector 257). `fuzz/seed.sh` turns real images into this form. The tree
//! is opened, listed two levels down, every file found is read, and so is `ovf-env.xml`.
use libfuzzer_sys::fuzz_target;
use preroot::media::udf::UdfTree;
use preroot::media::Tree;

#[path = "common.rs"]
mod common;

const SECTOR: usize = 2048;

fuzz_target!(|data: &[u8]| {
    // The image is written sparsely (a hole of the image's size, then only the sectors
    // given): the same bytes as writing every zero, without copying half a megabyte of
    // them per execution (that made this target run at a few hundred execs/s).
    let mut size = 257 * SECTOR;
    let mut records = Vec::new();
    for rec in data.chunks(2 + SECTOR) {
        let (Some(&lo), Some(&hi)) = (rec.first(), rec.get(1)) else {
            continue;
        };
        let n = usize::from(u16::from_le_bytes([lo, hi]) % 1024);
        size = size.max((n + 1) * SECTOR);
        records.push((n * SECTOR, &rec[2..]));
    }
    let path = common::sparse_image(size as u64, &records);
    if let Ok(tree) = UdfTree::open(&path) {
        let _ = (tree.volume_id(), tree.label(), tree.revision());
        common::walk(&tree);
        let _ = tree.read("ovf-env.xml", 1 << 20);
    }
});
