//! preroot: configure a cloud or bare-metal instance from the initramfs.
//!
//! Pipeline: `cmdline → detect → fetch (providers) → context`, with later stages (network,
//! grow, render, hand-off) reading the one [`context::Context`]. The README has the map.
#![deny(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Arithmetic on input must not overflow, divide by zero or wrap the clock (a `script_timeout`
// of 2^64-1 once aborted `apply` adding it to an `Instant`): checked or saturating everywhere.
// Unit tests may compute freely.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod apply;
pub mod base64;
pub mod bytes;
pub mod caps;
pub mod clean;
pub mod cli;
pub mod cloudconfig;
pub mod cloudinit;
pub mod cmdline;
pub mod conf;
pub mod context;
pub mod crypt;
pub mod deadline;
pub mod detect;
pub mod dhcp;
pub mod dhcp6;
pub mod disk;
pub mod handoff;
pub mod http;
pub mod logger;
pub mod media;
pub mod mime;
pub mod net;
pub mod netformat;
pub mod output;
pub mod platform;
pub mod providers;
pub mod render;
pub mod root;
pub mod run;
pub mod selinux;
pub mod state;
pub mod sys;
pub mod sysroot;
pub mod text;
pub mod userdata;
pub mod valid;
pub mod yaml;
