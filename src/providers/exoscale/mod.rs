//! Exoscale: CloudStack's metadata service and password server with API version `1.0`, at
//! the fixed address 169.254.169.254 (reached over DHCPv4): `1.0/meta-data/<key>`,
//! `1.0/user-data`, and the password server at `http://169.254.169.254:8080/1.0/` (port 8080
//! of the metadata address; `--endpoint password=URL` overrides it). Read by the CloudStack
//! reader with Exoscale's [`FLAVOR`] (cloud-init's `DataSourceExoscale`, Afterburn's
//! `providers/exoscale`); see `providers/cloudstack` for what is read and the password
//! protocol. cloud-init asks for the password at every boot; preroot once per instance (the
//! server forgets it once acknowledged anyway).
//!
//! Panic contract: that of the CloudStack reader.
#![deny(clippy::arithmetic_side_effects)]

use super::cloudstack::{self, Flavor};
use super::service::Endpoint;
use super::DatasourceError;
use crate::context::{Context, Platform};

/// Exoscale's differences from CloudStack.
pub const FLAVOR: Flavor = Flavor {
    platform: Platform::Exoscale,
    version: "1.0",
    password_path: "/1.0/",
};

/// Reads Exoscale's service at `ep`, then takes the password.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    cloudstack::fetch_as(ep, &FLAVOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SourceKind;
    use crate::media::DirTree;
    use crate::providers::netconfig::testutil::{source, TempState};
    use crate::providers::Input;

    #[test]
    fn the_fixture() {
        let st = TempState::new("exo");
        let tree = DirTree::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/exoscale"
        ));
        let input = Input {
            tree: &tree,
            source: source(SourceKind::MetadataService),
            state: &st.0,
            host_nics: Vec::new(),
        };
        let ctx = cloudstack::read_tree(&input, &FLAVOR).unwrap();
        assert_eq!(ctx.platform, Some(Platform::Exoscale));
        assert_eq!(
            ctx.instance_id.as_deref(),
            Some("5c5a0f5e-9f1b-4b0e-8b5e-8c7d2c3a1f00")
        );
        assert_eq!(ctx.hostname.as_deref(), Some("exo-test-vm"));
        assert_eq!(ctx.ssh_keys.len(), 1);
        assert_eq!(ctx.extra["availability_zone"], "ch-gva-2");
        assert!(ctx.user_data.is_some());
        assert!(ctx.errors.is_empty() && ctx.warnings.is_empty());
    }
}
