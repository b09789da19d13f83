//! Links every `#[no_panic]` byte-level parser into a binary, so that
//! `cargo build --profile nopanic --features nopanic --example nopanic` proves at link time that
//! none of them can panic. (A `#[no_panic]` function that nothing links is never checked.)
//! Running it does nothing useful; `black_box` keeps the optimiser from folding the calls away.
use std::hint::black_box;

use preroot::detect::label::{ext4, fat, iso9660};
use preroot::disk;

fn main() {
    let buf: Vec<u8> = black_box(std::env::args().flat_map(String::into_bytes).collect());
    let buf = black_box(buf.as_slice());
    black_box(iso9660::probe(buf));
    black_box(ext4::probe(buf));
    black_box(fat::probe(buf));
    black_box(fat::dir_volume_label(buf));
    black_box(disk::crc32(buf));
    black_box(disk::le_u32(buf, black_box(3)));
    black_box(disk::le_u64(buf, black_box(5)));
    black_box(disk::split_dev(black_box(buf.len() as u64)));
    black_box(disk::fs::ext4_superblock(buf));
    let mut copy = buf.to_vec();
    black_box(disk::put(&mut copy, black_box(9), buf));
    black_box(preroot::dhcp::wire::parse_udp_ipv4(buf, black_box(false)).is_ok());
    black_box(preroot::net::link::parse_ack(buf, black_box(7)));
    if let Some(bpb) = black_box(fat::parse_bpb(buf)) {
        black_box(bpb.root_dir_sectors());
        black_box(bpb.root_dir_sector());
        black_box(bpb.first_data_sector());
        black_box(bpb.cluster_count());
        black_box(bpb.kind());
        black_box(bpb.cluster_offset(black_box(7)));
        black_box(bpb.root_dir_region());
        if let Some(l) = &bpb.label {
            black_box(fat::label_text(l));
        }
    }
}
