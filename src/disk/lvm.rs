//! Root on LVM: grow each PV's partition, `lvm pvresize` the PVs, then
//! `lvm lvextend -l +100%FREE` the root LV (unless `preroot.grow.lv=0`).
//!
//! Owns reading `lvm`'s JSON report (`--reportformat json`, lvm2 ≥ 2.02.158) into the few
//! numbers the decisions need ([`parse_lv`], [`parse_pv`], pure and unit-tested on captured
//! output), and running `lvm` under the deadline with udev synchronisation on (lvm falls
//! back by itself where udev is not running), with its stderr in the error. Each step is skipped when the report
//! says it would change nothing, so a second run writes no LVM metadata.
//!
//! With the `fault-injection` feature, `PREROOT_FAULT_AFTER_STEP=pvresize|lvextend` stops
//! (or, with `PREROOT_FAULT_HOLD=1`, holds) right after that step, for the power-cut tests
//! (`super::fault_after_step`, `tests/qemu_atomic_faults.rs`); release builds have none of it.
//!
//! Not supported: PVs on whole disks (nothing to grow below them), thin pools, RAID LVs.

use super::{gerr, Action, BlockDev, ErrorKind, GrowError, Options, Report, Status};
use crate::root::Root;
use serde_json::Value;
use std::time::Duration;

/// Where `lvm` is looked for (dracut's `90lvm` installs `/usr/sbin/lvm` or `/sbin/lvm`).
const LVM_PATHS: &[&str] = &["/usr/sbin/lvm", "/sbin/lvm", "/usr/bin/lvm", "/bin/lvm"];
/// With udev synchronisation: in a systemd initramfs udev runs, and an LV changed behind
/// its back is left marked not ready, so systemd never mounts the root (seen in the QEMU
/// Atomic boot). lvm checks for a running udev itself and skips the wait without one.
const LVM_CONFIG: &str = "activation { udev_sync = 1 udev_rules = 1 }";
/// Reports larger than this are refused.
const MAX_REPORT: usize = 1 << 20;

/// The root LV, from `lvm lvs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    pub vg: String,
    pub lv: String,
    pub lv_size: u64,
    pub vg_free: u64,
    pub extent_size: u64,
}

/// A PV, from `lvm pvs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    pub pv_size: u64,
    pub dev_size: u64,
    pub pe_start: u64,
    pub extent_size: u64,
}

impl Pv {
    /// Would `pvresize` add at least one extent?
    pub fn can_grow(&self) -> bool {
        self.dev_size.saturating_sub(self.pv_size)
            >= self.pe_start.saturating_add(self.extent_size.max(1))
    }
}

/// The rows of a report's first table named `table` (`lv`, `pv`).
fn rows<'a>(json: &'a Value, table: &str) -> Option<&'a Vec<Value>> {
    json.get("report")?
        .as_array()?
        .first()?
        .get(table)?
        .as_array()
}

fn field<'a>(row: &'a Value, name: &str) -> Option<&'a str> {
    row.get(name)?.as_str()
}

fn num(row: &Value, name: &str) -> Option<u64> {
    field(row, name)?
        .trim()
        .trim_end_matches(['B', 'b'])
        .parse()
        .ok()
}

fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_REPORT {
        return Err("report larger than 1 MiB".into());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not a JSON report: {e}"))
}

/// Splits a device-mapper name `VG-LV` (a `-` inside either is doubled) into (VG, LV).
pub fn split_dm_name(name: &str) -> Option<(String, String)> {
    let b = name.as_bytes();
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        if c == b'-' {
            if b.get(i.saturating_add(1)) == Some(&b'-') {
                i = i.saturating_add(2);
                continue;
            }
            let vg = name.get(..i)?.replace("--", "-");
            let lv = name.get(i.saturating_add(1)..)?.replace("--", "-");
            return (!vg.is_empty() && !lv.is_empty()).then_some((vg, lv));
        }
        i = i.saturating_add(1);
    }
    None
}

/// Finds the LV whose device-mapper name is `dm_name` in
/// `lvm lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,vg_free,vg_extent_size`.
pub fn parse_lv(bytes: &[u8], dm_name: &str) -> Result<Lv, String> {
    let json = parse(bytes)?;
    let (vg, lv) = split_dm_name(dm_name).ok_or_else(|| format!("{dm_name}: not an LVM name"))?;
    let row = rows(&json, "lv")
        .ok_or("no lv table in the report")?
        .iter()
        .find(|r| {
            field(r, "vg_name") == Some(vg.as_str()) && field(r, "lv_name") == Some(lv.as_str())
        })
        .ok_or_else(|| format!("no LV {vg}/{lv} in the report"))?;
    let n = |name: &str| num(row, name).ok_or_else(|| format!("{vg}/{lv}: no number {name}"));
    Ok(Lv {
        lv_size: n("lv_size")?,
        vg_free: n("vg_free")?,
        extent_size: n("vg_extent_size")?,
        vg,
        lv,
    })
}

/// Reads `lvm pvs --reportformat json --units b --nosuffix -o pv_name,pv_size,dev_size,pe_start,vg_extent_size PV`.
pub fn parse_pv(bytes: &[u8]) -> Result<Pv, String> {
    let json = parse(bytes)?;
    let row = rows(&json, "pv")
        .and_then(|r| r.first())
        .ok_or("no pv row in the report")?;
    let n = |name: &str| num(row, name).ok_or_else(|| format!("PV: no number {name}"));
    Ok(Pv {
        pv_size: n("pv_size")?,
        dev_size: n("dev_size")?,
        pe_start: n("pe_start")?,
        extent_size: n("vg_extent_size")?,
    })
}

/// Runs `lvm ARGS` under the deadline; its stdout, or an error with its stderr.
fn run_lvm(args: &[&str], opts: &Options) -> Result<Vec<u8>, GrowError> {
    let lvm = LVM_PATHS
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| {
            gerr(
                ErrorKind::NotFound,
                "lvm",
                "not installed (dracut module 90lvm)",
            )
        })?;
    let object = format!("lvm {}", args.first().copied().unwrap_or(""));
    let deadline = if opts.deadline.remaining() < Duration::from_secs(30) {
        crate::run::Deadline::after(Duration::from_secs(30))
    } else {
        opts.deadline
    };
    // A fixed environment: the C locale keeps lvm's messages and numbers parseable.
    let out = crate::sys::spawn::run(
        lvm,
        args,
        &["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"],
        std::time::Instant::now() + deadline.remaining(),
        MAX_REPORT,
    )
    .map_err(|e| gerr(ErrorKind::Io, &object, e))?;
    if out.code != Some(0) {
        let msg = String::from_utf8_lossy(&out.stderr);
        let how = out.code.map_or_else(
            || "killed by a signal".to_string(),
            |c| format!("exit status {c}"),
        );
        return Err(gerr(
            ErrorKind::Io,
            &object,
            format!("{how}: {}", msg.trim()),
        ));
    }
    Ok(out.stdout)
}

/// Grows an LV's PVs (their partitions, then `pvresize`) and the LV.
pub fn grow(
    root: &Root,
    dev: &BlockDev,
    dm_name: &str,
    opts: &Options,
    report: &mut Report,
) -> Result<(), GrowError> {
    let slaves = dev.slaves();
    if slaves.is_empty() {
        return Err(gerr(
            ErrorKind::NotFound,
            dm_name,
            "a device-mapper device with no underlying device",
        ));
    }
    for pv in &slaves {
        let node = format!("/dev/{}", pv.name);
        if pv.partition_number().is_some() {
            report.actions.push(super::grow_partition(root, pv, opts)?);
        }
        let config = format!("--config={LVM_CONFIG}");
        let out = run_lvm(
            &[
                "pvs",
                &config,
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "pv_name,pv_size,dev_size,pe_start,vg_extent_size",
                &node,
            ],
            opts,
        )?;
        let info = parse_pv(&out).map_err(|e| gerr(ErrorKind::Invalid, &node, e))?;
        let mut a = Action::new("pv", node.clone());
        a.old_size = info.pv_size;
        a.new_size = info
            .dev_size
            .saturating_sub(info.pe_start)
            .max(info.pv_size);
        if info.can_grow() {
            a.steps.push(format!("lvm pvresize {node}"));
            if opts.dry_run {
                a.status = Status::Planned;
            } else {
                run_lvm(&["pvresize", &config, &node], opts)?;
                a.status = Status::Done;
                log::info!("grow: PV {node} resized");
                #[cfg(feature = "fault-injection")]
                super::fault_after_step("pvresize", &[pv.node(root)]);
            }
        }
        report.actions.push(a);
    }
    let config = format!("--config={LVM_CONFIG}");
    let out = run_lvm(
        &[
            "lvs",
            &config,
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_name,lv_name,lv_size,vg_free,vg_extent_size",
        ],
        opts,
    )?;
    let lv = parse_lv(&out, dm_name).map_err(|e| gerr(ErrorKind::Invalid, dm_name, e))?;
    let name = format!("{}/{}", lv.vg, lv.lv);
    let mut a = Action::new("lv", format!("/dev/{}", dev.name));
    a.format = Some(name.clone());
    a.old_size = lv.lv_size;
    a.new_size = lv.lv_size.saturating_add(lv.vg_free);
    if !opts.lv {
        a.status = Status::Skipped;
        a.note = Some("preroot.grow.lv=0".into());
        a.new_size = a.old_size;
    } else if lv.vg_free >= lv.extent_size.max(1) {
        a.steps.push(format!("lvm lvextend -l +100%FREE {name}"));
        if opts.dry_run {
            a.status = Status::Planned;
        } else {
            run_lvm(&["lvextend", &config, "-l", "+100%FREE", &name], opts)?;
            a.status = Status::Done;
            log::info!("grow: LV {name} extended by {} bytes", lv.vg_free);
            #[cfg(feature = "fault-injection")]
            super::fault_after_step(
                "lvextend",
                &slaves.iter().map(|pv| pv.node(root)).collect::<Vec<_>>(),
            );
        }
    } else {
        a.new_size = a.old_size;
    }
    report.actions.push(a);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lvm lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,vg_free,vg_extent_size`
    /// on the Fedora Atomic layout after `pvresize` (lvm2 2.03.16).
    const LVS: &str = r#"  {
      "report": [
          {
              "lv": [
                  {"vg_name":"atomicos", "lv_name":"root", "lv_size":"3019898880", "vg_free":"7340032000", "vg_extent_size":"4194304"},
                  {"vg_name":"my-vg", "lv_name":"data--x", "lv_size":"4194304", "vg_free":"0", "vg_extent_size":"4194304"}
              ]
          }
      ]
  }
"#;

    const PVS: &str = r#"{"report":[{"pv":[{"pv_name":"/dev/vda2", "pv_size":"3217031168", "dev_size":"10557587456", "pe_start":"1048576", "vg_extent_size":"4194304"}]}]}"#;

    #[test]
    fn reports() {
        let lv = parse_lv(LVS.as_bytes(), "atomicos-root").unwrap();
        assert_eq!(
            (lv.vg.as_str(), lv.lv.as_str(), lv.vg_free),
            ("atomicos", "root", 7340032000)
        );
        let lv = parse_lv(LVS.as_bytes(), "my--vg-data----x").unwrap();
        assert_eq!((lv.vg.as_str(), lv.lv.as_str()), ("my-vg", "data--x"));
        assert!(parse_lv(LVS.as_bytes(), "atomicos-swap").is_err());
        assert!(parse_lv(b"{", "a-b").is_err());
        assert!(parse_lv(br#"{"report":[]}"#, "a-b").is_err());
        let pv = parse_pv(PVS.as_bytes()).unwrap();
        assert!(pv.can_grow());
        let full = Pv {
            pv_size: 10556538880,
            dev_size: 10557587456,
            pe_start: 1048576,
            extent_size: 4194304,
        };
        assert!(!full.can_grow(), "after pvresize");
    }

    #[test]
    fn dm_names() {
        for (name, want) in [
            ("atomicos-root", Some(("atomicos", "root"))),
            ("a--b-c", Some(("a-b", "c"))),
            ("a-b--c", Some(("a", "b-c"))),
            ("nodash", None),
            ("-x", None),
            ("x-", None),
        ] {
            let got = split_dm_name(name);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "case {name}"
            );
        }
    }
}
