//! Links every `#[no_panic]` byte-level parser into a binary, so that
//! `cargo build --profile nopanic --features nopanic --example nopanic` proves at link time that
//! none of them can panic. (A `#[no_panic]` function that nothing links is never checked.)
//! Running it does nothing useful; `black_box` keeps the optimiser from folding the calls away.
use std::hint::black_box;

use preroot::disk;
use preroot::media::ext4 as ext;
use preroot::media::label::{ext4, fat, iso9660};
use preroot::media::udf;

fn main() {
    let buf: Vec<u8> = black_box(std::env::args().flat_map(String::into_bytes).collect());
    let buf = black_box(buf.as_slice());
    black_box(iso9660::probe(buf));
    black_box(ext4::probe(buf));
    black_box(fat::probe(buf));
    black_box(fat::dir_volume_label(buf));
    black_box(disk::crc32(buf));
    black_box(preroot::bytes::le_u16(buf, black_box(1)));
    black_box(preroot::bytes::le_u32(buf, black_box(3)));
    black_box(preroot::bytes::le_u64(buf, black_box(5)));
    black_box(preroot::bytes::be_u16(buf, black_box(1)));
    black_box(preroot::bytes::be_u32(buf, black_box(3)));
    black_box(preroot::bytes::be_u64(buf, black_box(5)));
    black_box(preroot::bytes::ne_u16(buf, black_box(1)));
    black_box(preroot::bytes::ne_u32(buf, black_box(3)));
    black_box(disk::split_dev(black_box(buf.len() as u64)));
    black_box(disk::fs::ext4_superblock(buf));
    black_box(disk::btrfs::superblock(buf));
    black_box(disk::luks::bin_header(buf, black_box(0)).is_ok());
    black_box(disk::lvmmeta::label(buf).is_ok());
    black_box(disk::lvmmeta::mda_header(buf, black_box(4096)).is_ok());
    black_box(disk::lvmmeta::calc_crc(black_box(1), buf));
    black_box(disk::crc32_update(black_box(1), buf));
    let mut copy = buf.to_vec();
    black_box(preroot::bytes::put(&mut copy, black_box(9), buf));
    black_box(preroot::dhcp::wire::parse_udp_ipv4(buf, black_box(false)).is_ok());
    black_box(preroot::dhcp6::wire::check(buf).is_ok());
    black_box(preroot::dhcp6::wire::header(buf));
    black_box(preroot::dhcp6::wire::next_option(buf, black_box(4), black_box(4)).is_some());
    black_box(preroot::dhcp6::wire::check_name(buf).is_ok());
    black_box(preroot::dhcp6::wire::duid_kind(buf));
    black_box(preroot::net::rtnl::parse_ack(buf, black_box(7)));
    black_box(preroot::net::rtnl::next_message(buf, black_box(4)).is_some());
    black_box(preroot::net::rtnl::next_attr(buf, black_box(4)).is_some());
    black_box(preroot::net::rtnl::find_attr(buf, black_box(4), black_box(2)).is_some());
    black_box(preroot::net::rtnl::parse_addr6(buf));
    black_box(preroot::net::rtnl::parse_link6(buf));
    black_box(preroot::net::rtnl::parse_route(buf));
    if let Some((m, _)) = black_box(preroot::net::rtnl::next_message(buf, 0)) {
        black_box(preroot::net::rtnl::dump_end(&m, black_box(3)));
    }
    black_box(ext::parse_inode(buf));
    black_box(ext::extent_header(buf).is_ok());
    black_box(ext::extent_leaf(buf, black_box(3)));
    black_box(ext::extent_index(buf, black_box(2)));
    black_box(ext::dirent(buf, black_box(5), black_box(true)).is_ok());
    black_box(ext::inline_data_value(buf).is_ok());
    if let Ok(sb) = black_box(ext::parse_superblock(buf)) {
        black_box(sb.group_count());
        black_box(sb.has_super(black_box(243)));
        black_box(sb.desc_offset(black_box(70)));
        black_box(ext::inode_table(buf, &sb));
    }
    black_box(udf::crc_itu(buf));
    black_box(udf::parse_tag(buf).is_ok());
    black_box(udf::check_tag(buf).is_ok());
    black_box(udf::vrs_descriptor(buf));
    black_box(udf::parse_long_ad(buf, black_box(3)));
    black_box(udf::parse_short_ad(buf, black_box(3), black_box(1)));
    black_box(udf::dstring(buf));
    black_box(preroot::providers::azure::wireserver::wireserver_from_option(buf));
    if let Ok(program) = preroot::selinux::regex::Program::new(black_box(b"/etc/(.*/)?x[a-z]{1,3}"))
    {
        let mut threads = preroot::selinux::regex::Threads::new(program.len());
        let mut fuel = black_box(1000u64);
        black_box(program.is_match(buf, &mut threads, &mut fuel).is_ok());
    }
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
