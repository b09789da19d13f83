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

pub mod apply;
pub mod base64;
pub mod clean;
pub mod cli;
pub mod cloudconfig;
pub mod cloudinit;
pub mod cmdline;
pub mod context;
pub mod crypt;
pub mod detect;
pub mod dhcp;
pub mod disk;
pub mod handoff;
pub mod http;
pub mod logger;
pub mod media;
pub mod mime;
pub mod net;
pub mod output;
pub mod providers;
pub mod render;
pub mod root;
pub mod run;
pub mod state;
pub mod sys;
pub mod sysroot;
pub mod userdata;
