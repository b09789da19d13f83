//! Alibaba Cloud ECS (Aliyun): an EC2-shaped metadata tree at `http://100.100.100.200/`
//! (`latest/meta-data/…`, `latest/user-data`), read by the EC2 reader
//! ([`super::ec2::read_tree_as`]) with Alibaba's [`FLAVOR`]: its own token header names,
//! key directories named by key pair, its region and zone leaves.
//!
//! Token ("security hardening mode"): `PUT latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds: 21600`, then `X-aliyun-ecs-metadata-token` on
//! every GET (www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata; cloud-init's
//! `DataSourceAliYun.imdsv2_token_put_header`; Afterburn's `providers/aliyun`). Where the
//! PUT gets 400, 404, 405 or 501, the GETs go without a token ("normal mode"), recorded in
//! `fallbacks` as `aliyun-normal-mode` and as a warning; a 401 or 403 is an error.
//!
//! Reads `instance-id`, `hostname`, `public-keys/<name>/openssh-key` (listed names: an index
//! or a key-pair name), `region-id` and `zone-id` (extra), `latest/user-data` (a 0600
//! secret), and the NICs of `network/interfaces/macs/` with DHCPv4, the primary (`mac`)
//! first: ECS gives every NIC its address by DHCP. `dns-conf/nameservers` is left to DHCP.
//!
//! Panic contract: that of the EC2 reader; nothing here panics on any input.
#![deny(clippy::arithmetic_side_effects)]

use super::ec2::{self, Flavor};
use super::service::Endpoint;
use super::DatasourceError;
use crate::context::{Context, Platform};

/// Alibaba's differences from EC2.
pub const FLAVOR: Flavor = Flavor {
    platform: Platform::Alibaba,
    ttl_header: "X-aliyun-ecs-metadata-token-ttl-seconds",
    token_header: "X-aliyun-ecs-metadata-token",
    tokenless: "aliyun-normal-mode",
    token_mode: "security hardening mode",
    plain_mode: "normal mode",
    named_keys: true,
    extras: &[
        ("region-id", "region"),
        ("zone-id", "availability_zone"),
        ("instance/instance-type", "instance_type"),
    ],
};

/// Reads Alibaba's metadata tree at `ep`, with its token.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    ec2::fetch_as(ep, &FLAVOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Addressing, HostNic, SourceKind};
    use crate::media::DirTree;
    use crate::providers::netconfig::testutil::{source, TempState};
    use crate::providers::Input;

    #[test]
    fn the_fixture() {
        let st = TempState::new("aliyun");
        let tree = DirTree::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/alibaba"
        ));
        let input = Input {
            tree: &tree,
            source: source(SourceKind::MetadataService),
            state: &st.0,
            host_nics: vec![HostNic {
                name: "eth0".into(),
                mac: "00:16:3e:14:59:58".into(),
            }],
        };
        let ctx = ec2::read_tree_as(&input, &FLAVOR).unwrap();
        assert_eq!(ctx.platform, Some(Platform::Alibaba));
        assert_eq!(ctx.instance_id.as_deref(), Some("i-bp15ojxppkmsnyjxxxxx"));
        assert_eq!(ctx.hostname.as_deref(), Some("aliyun-test-vm-00"));
        assert_eq!(
            ctx.ssh_keys,
            ["ssh-rsa AAAAB3Nza"],
            "named and indexed keys, deduplicated"
        );
        assert_eq!(ctx.extra["region"], "cn-hangzhou");
        assert_eq!(ctx.extra["availability_zone"], "cn-hangzhou-j");
        assert!(ctx.user_data.is_some());
        assert_eq!(ctx.network.links.len(), 1);
        assert_eq!(ctx.network.links[0].name.as_deref(), Some("eth0"));
        assert_eq!(ctx.network.links[0].addressing, vec![Addressing::Dhcp4]);
        assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
    }
}
