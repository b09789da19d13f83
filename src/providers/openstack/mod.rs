//! OpenStack: its config drive (`config-2`, [`configdrive`]) and its metadata service, which
//! serves the very documents of the drive under `openstack/` and, on some clouds, only an
//! EC2-style tree ([`fetch`]).
//!
//! A hinted OpenStack waits for its config drive, then asks the service (run.rs decides when);
//! this module reads whichever it is given. Never writes outside the state directory.

pub mod configdrive;

pub use configdrive::{mask_to_prefix, parse_network_data, read_drive};

use super::service::Endpoint;
use super::{ec2, DatasourceError};
use crate::context::{Context, Fallback, Platform};
use crate::media::Tree;

/// Reads OpenStack's metadata service at `ep` with the config-drive reader. Without an
/// `openstack/` tree at all (its listing is 404), the service's EC2-style tree, which must
/// name the instance (`fallbacks: openstack-ec2-tree`). A tree that is there but bad
/// (truncated JSON, too large, a refused redirect, a timeout) is the error itself: reading
/// another tree would hide it behind an empty context.
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    ep.with_tree(|input, tree| {
        let e = match read_drive(input) {
            Ok(ctx) => return Ok(ctx),
            Err(e) => e,
        };
        if !matches!(tree.list("openstack"), Ok(None)) {
            return Err(e);
        }
        let mut ctx = ec2::read_tree(input, Platform::Openstack).map_err(|_| e.clone())?;
        if ctx.instance_id.is_none() {
            return Err(e);
        }
        ctx.fallbacks.push(Fallback {
            kind: "openstack-ec2-tree".into(),
            reason: format!("{e}; read latest/meta-data instead"),
        });
        Ok(ctx)
    })
}
