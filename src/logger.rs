//! The `log` backend: `/dev/kmsg` with the `preroot:` identifier inside the initramfs (so the
//! lines land in the journal with their priority), stderr with `-v`, silent otherwise (the
//! CLI then prints its own one-line errors).
//!
//! Never logs secrets: callers log file names and sizes, never contents. Every record is one
//! line ([`crate::text::one_line`]), whatever value it carries.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Kmsg,
    Off,
}

struct Logger {
    target: Target,
    kmsg: Mutex<Option<File>>,
}

/// syslog priority with facility `user` (1 << 3), so journald files the line under the
/// `preroot` identifier rather than the kernel's.
fn kmsg_priority(level: Level) -> u8 {
    const USER: u8 = 8;
    USER | match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if self.target == Target::Off {
            return;
        }
        // One record, one line: a value in the message cannot split it or forge another.
        let message = crate::text::one_line(&record.args().to_string());
        match self.target {
            Target::Off => {}
            Target::Stderr => {
                let _ = writeln!(
                    std::io::stderr(),
                    "preroot: {}: {message}",
                    record.level().as_str().to_ascii_lowercase(),
                );
            }
            Target::Kmsg => {
                // One write per record: /dev/kmsg takes each write as one message.
                let line = format!("<{}>preroot: {message}\n", kmsg_priority(record.level()));
                if let Ok(mut guard) = self.kmsg.lock() {
                    if let Some(f) = guard.as_mut() {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
            }
        }
    }

    fn flush(&self) {}
}

/// Are we in an initramfs? systemd's and dracut's marker file.
pub fn in_initrd() -> bool {
    std::path::Path::new("/etc/initrd-release").exists()
}

/// Installs the logger once. `verbose` (`-v`) forces stderr at debug level; `debug`
/// (`preroot.debug`) raises the kmsg level to debug.
pub fn init(verbose: bool, debug: bool) {
    let (target, level) = if verbose {
        (Target::Stderr, LevelFilter::Debug)
    } else if in_initrd() {
        let level = if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        (Target::Kmsg, level)
    } else {
        (Target::Off, LevelFilter::Off)
    };
    let kmsg = if target == Target::Kmsg {
        OpenOptions::new().write(true).open("/dev/kmsg").ok()
    } else {
        None
    };
    let target = if target == Target::Kmsg && kmsg.is_none() {
        Target::Stderr
    } else {
        target
    };
    let logger = Box::new(Logger {
        target,
        kmsg: Mutex::new(kmsg),
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_use_user_facility() {
        assert_eq!(kmsg_priority(Level::Error), 11);
        assert_eq!(kmsg_priority(Level::Info), 14);
        assert_eq!(kmsg_priority(Level::Debug), 15);
    }
}
