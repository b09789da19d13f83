//! Root on LVM: grow each PV's device (its partition, or a LUKS2 mapping and its partition),
//! `pvresize` the PVs, then `lvextend -l +100%FREE` the root LV (unless `preroot.grow.lv=0`).
//!
//! Owns deciding what to do and doing it in one `lvm` process. The decision reads the VG
//! metadata on the PVs themselves ([`super::lvmmeta`]: label, metadata area, text), so a boot
//! with nothing to grow starts no `lvm` at all; the commands then run as one `lvm` script
//! (`#!/usr/sbin/lvm` and one command per line: lvm runs them in order and stops at the first
//! failure), under the deadline, with udev synchronisation on (lvm falls back by itself where
//! udev is not running), its stderr in the error; afterwards the metadata must say what was
//! planned. Where the metadata reader refuses a layout (two metadata areas, a PV without
//! one), `lvm`'s JSON reports decide instead ([`parse_lv`], [`parse_pv`], pure and
//! unit-tested on captured output). Each step is skipped when it would change nothing, so a
//! second run writes no LVM metadata. Crash safety is lvm's own order: `pvresize` commits
//! before `lvextend` starts, each a metadata commit of its own.
//!
//! With the `fault-injection` feature, `PREROOT_FAULT_AFTER_STEP=pvresize|lvextend` stops
//! (or, with `PREROOT_FAULT_HOLD=1`, holds) right after that step, for the power-cut tests
//! (`super::fault_after_step`, `tests/qemu_atomic_faults.rs`); to hold between the two
//! steps, that build runs them as two scripts. Release builds have none of it.
//!
//! Not supported: PVs on whole disks (nothing to grow below them), thin pools, RAID LVs.

use super::{gerr, lvmmeta, Action, BlockDev, ErrorKind, GrowError, Options, Report, Status};
use crate::root::Root;
use serde_json::Value;
use std::time::Duration;

/// Where `lvm` is looked for (dracut's `90lvm` installs `/usr/sbin/lvm` or `/sbin/lvm`).
const LVM_PATHS: &[&str] = &["/usr/sbin/lvm", "/sbin/lvm", "/usr/bin/lvm", "/bin/lvm"];
/// udev rules on (`udev_rules = 1`): the LV's change event carries the flags udev's dm rules
/// need (without them an LV changed behind udev's back is left marked not ready and systemd
/// never mounts the root: seen in the QEMU Atomic boot with `udev_rules = 0`). No waiting for
/// udev to finish that event (`udev_sync = 0`): the LV is resized when the resume returns, and
/// under TCG the wait for udev's dm rules was most of `lvextend`'s 2.3 s. No dmeventd
/// monitoring (not running in an initramfs; linear LVs need none) and no backup or archive
/// files (the initramfs's /etc/lvm is thrown away at the switch root). The reserved memory is
/// turned off by [`ConfOverlay`], as lvm reads it only from its files.
const LVM_CONFIG: &str = "activation { udev_sync = 0 udev_rules = 1 monitoring = 0 } \
                          backup { backup = 0 archive = 0 }";
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

/// The `lvm` binary dracut installed.
fn lvm_path() -> Result<&'static str, GrowError> {
    LVM_PATHS
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| {
            gerr(
                ErrorKind::NotFound,
                "lvm",
                "not installed (dracut module 90lvm)",
            )
        })
}

/// Runs `lvm ARGS` under the deadline; its stdout, or an error with its stderr.
fn run_lvm(args: &[&str], opts: &Options) -> Result<Vec<u8>, GrowError> {
    let object = format!("lvm {}", args.first().copied().unwrap_or(""));
    run_lvm_named(args, &object, None, opts)
}

/// [`run_lvm`], naming the command `object` in the log and in errors, with
/// `LVM_SYSTEM_DIR=system_dir` when given.
fn run_lvm_named(
    args: &[&str],
    object: &str,
    system_dir: Option<&std::path::Path>,
    opts: &Options,
) -> Result<Vec<u8>, GrowError> {
    let lvm = lvm_path()?;
    let deadline = if opts.deadline.remaining() < Duration::from_secs(30) {
        crate::deadline::Deadline::after(Duration::from_secs(30))
    } else {
        opts.deadline
    };
    // A fixed environment: the C locale keeps lvm's messages and numbers parseable.
    let started = std::time::Instant::now();
    let sys_dir = system_dir.map(|d| format!("LVM_SYSTEM_DIR={}", d.display()));
    let mut env = vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"];
    env.extend(sys_dir.as_deref());
    let out = crate::sys::spawn::run(lvm, args, &env, deadline.instant(), MAX_REPORT)
        .map_err(|e| gerr(ErrorKind::Io, object, e))?;
    log::info!("grow: {object}: {} ms", started.elapsed().as_millis());
    if out.code != Some(0) {
        let msg = String::from_utf8_lossy(&out.stderr);
        let how = out.code.map_or_else(
            || "killed by a signal".to_string(),
            |c| format!("exit status {c}"),
        );
        return Err(gerr(
            ErrorKind::Io,
            object,
            format!("{how}: {}", msg.trim()),
        ));
    }
    Ok(out.stdout)
}

/// What growing the LV's PVs and the LV will do, decided before any of it is done.
#[derive(Debug, Clone)]
struct Plan {
    pvs: Vec<PvStep>,
    /// `VG/LV`.
    lv: String,
    lv_old: u64,
    lv_new: u64,
    lv_grow: bool,
    /// The numbers come from the metadata on the PVs (and are checked against it afterwards),
    /// not from `lvm`'s reports.
    from_metadata: bool,
    /// Extent size, bytes (0 when from reports).
    extent: u64,
    /// (PV node, its extents after `pvresize`), and the LV's extents after `lvextend`, to
    /// check against the metadata afterwards.
    expect: Vec<(std::path::PathBuf, u64)>,
    expect_lv_extents: u64,
}

#[derive(Debug, Clone)]
struct PvStep {
    /// `/dev/NAME`.
    node: String,
    old: u64,
    new: u64,
    grow: bool,
}

/// Reads the VG metadata of the PVs `slaves` (the copy with the highest sequence number),
/// and plans from it: a PV grows when its device now fits more extents than it has, the LV
/// when the VG will have a free extent. Errors when anything is not as this reader
/// understands it (the caller then asks `lvm`).
fn plan_from_metadata(
    root: &Root,
    slaves: &[BlockDev],
    vg: &str,
    lv: &str,
    opts: &Options,
) -> Result<Plan, String> {
    let mut best: Option<lvmmeta::Vg> = None;
    let mut labels = Vec::new();
    for pv in slaves {
        let node = pv.node(root);
        let (label, meta) =
            read_pv_metadata(&node).map_err(|e| format!("{}: {e}", node.display()))?;
        if meta.name == vg && best.as_ref().is_none_or(|b| meta.seqno > b.seqno) {
            best = Some(meta);
        }
        labels.push((pv, node, label));
    }
    let meta = best.ok_or_else(|| format!("no metadata of VG {vg} on its PVs"))?;
    let extent = meta.extent_bytes();
    let lv_meta = meta
        .lv(lv)
        .ok_or_else(|| format!("no LV {lv} in VG {vg}'s metadata"))?;
    let mut pvs = Vec::new();
    let mut expect = Vec::new();
    let mut added = 0u64;
    for (dev, node, label) in labels {
        let pvm = meta
            .pv_by_uuid(&label.pv_uuid)
            .ok_or_else(|| format!("{}: its PV is not in VG {vg}'s metadata", node.display()))?;
        if pvm.pe_start.saturating_mul(512) != label.pe_start {
            return Err(format!(
                "{}: pe_start differs between label and metadata",
                node.display()
            ));
        }
        let dev_bytes = dev.size_bytes().ok_or("no size in sysfs")?;
        let fits = lvmmeta::extents_fitting(pvm, extent, dev_bytes);
        let grow = fits > pvm.pe_count;
        if grow {
            added = added.saturating_add(fits.saturating_sub(pvm.pe_count));
            expect.push((node.clone(), fits));
        }
        pvs.push(PvStep {
            node: format!("/dev/{}", dev.name),
            old: pvm.pe_count.saturating_mul(extent),
            new: fits.max(pvm.pe_count).saturating_mul(extent),
            grow,
        });
    }
    let free = meta.free().saturating_add(added);
    let lv_grow = opts.lv && free >= 1;
    let lv_old = lv_meta.extents.saturating_mul(extent);
    Ok(Plan {
        pvs,
        lv: format!("{vg}/{lv}"),
        lv_old,
        lv_new: if lv_grow {
            lv_meta.extents.saturating_add(free).saturating_mul(extent)
        } else {
            lv_old
        },
        lv_grow,
        from_metadata: true,
        extent,
        expect,
        expect_lv_extents: if lv_grow {
            lv_meta.extents.saturating_add(free)
        } else {
            lv_meta.extents
        },
    })
}

/// A PV's label and the VG metadata in its metadata area.
fn read_pv_metadata(node: &std::path::Path) -> Result<(lvmmeta::Label, lvmmeta::Vg), String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(node).map_err(|e| e.to_string())?;
    let read = |off: u64, len: usize| -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off)
            .map_err(|e| format!("read at byte {off}: {e}"))?;
        Ok(buf)
    };
    let label = lvmmeta::label(&read(0, lvmmeta::LABEL_SCAN_LEN)?).map_err(|e| e.to_string())?;
    let (start, size) = label.mda;
    let h = lvmmeta::mda_header(&read(start, lvmmeta::MDA_HEADER_LEN)?, start)
        .map_err(|e| e.to_string())?;
    if h.size != size {
        return Err(format!(
            "metadata area of {} bytes, the label says {size}",
            h.size
        ));
    }
    // Only the text (and its wrapped part), not the whole area: it is ~1 MiB, the text a few.
    let [(o1, l1), (o2, l2)] = lvmmeta::text_ranges(&h).map_err(|e| e.to_string())?;
    let text = lvmmeta::text_from_parts(
        &read(start.saturating_add(o1), l1)?,
        &read(start.saturating_add(o2), l2)?,
        &h,
    )
    .map_err(|e| e.to_string())?;
    let vg = lvmmeta::parse_vg(&text).map_err(|e| e.to_string())?;
    Ok((label, vg))
}

/// The plan from `lvm`'s own reports, for layouts the metadata reader refuses (two metadata
/// areas, a PV without one): `pvs` per PV, `lvs` once. The LV's growth counts the extents
/// the PVs will add.
fn plan_from_reports(
    slaves: &[BlockDev],
    root: &Root,
    dm_name: &str,
    opts: &Options,
) -> Result<Plan, GrowError> {
    let config = format!("--config={LVM_CONFIG}");
    let mut pvs = Vec::new();
    let mut added = 0u64;
    let mut extent = 0u64;
    for pv in slaves {
        let node = format!("/dev/{}", pv.name);
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
                &pv.node(root).to_string_lossy(),
            ],
            opts,
        )?;
        let info = parse_pv(&out).map_err(|e| gerr(ErrorKind::Invalid, &node, e))?;
        let new = info
            .dev_size
            .saturating_sub(info.pe_start)
            .max(info.pv_size);
        let grow = info.can_grow();
        if grow {
            extent = info.extent_size;
            added = added.saturating_add(
                new.checked_div(info.extent_size)
                    .unwrap_or(0)
                    .saturating_sub(info.pv_size.checked_div(info.extent_size).unwrap_or(0)),
            );
        }
        pvs.push(PvStep {
            node,
            old: info.pv_size,
            new,
            grow,
        });
    }
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
    let free = lv
        .vg_free
        .saturating_add(added.saturating_mul(lv.extent_size));
    let lv_grow = opts.lv && free >= lv.extent_size.max(1);
    Ok(Plan {
        pvs,
        lv: format!("{}/{}", lv.vg, lv.lv),
        lv_old: lv.lv_size,
        lv_new: if lv_grow {
            lv.lv_size.saturating_add(free)
        } else {
            lv.lv_size
        },
        lv_grow,
        from_metadata: false,
        extent,
        expect: Vec::new(),
        expect_lv_extents: 0,
    })
}

/// `lvmlocal.conf` for [`ConfOverlay`]: the system's (`original`, if any) with
/// `activation { reserved_memory = 0 }` added. None when the original already has activation
/// settings (a second `activation` section would hide or be hidden by them) or is not text
/// lvm's parser and this one agree on.
fn local_conf(original: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut text = original.unwrap_or_default().to_vec();
    let top = lvmmeta::parse_text(&text).ok()?;
    if top
        .items()
        .iter()
        .any(|(k, _)| k == "activation" || k.starts_with("activation/"))
    {
        return None;
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(b"activation {\n\treserved_memory = 0\n}\n");
    Some(text)
}

/// A private copy of `/etc/lvm` for the script's `lvm` (`LVM_SYSTEM_DIR`): a symlink to each
/// entry (lvm.conf, the devices file's directory, profiles, ...) but `lvmlocal.conf`, which is
/// [`local_conf`]'s. lvm reads `activation/reserved_memory` once, when it reads its files,
/// before `--config` applies: on the command line it is ignored (lvm2's `memlock_init`), so
/// only a file can turn the reserve off. Removed on drop.
pub struct ConfOverlay {
    dir: std::path::PathBuf,
}

impl ConfOverlay {
    /// The overlay of `etc` (the system's `/etc/lvm`) in `run_dir`; None (lvm then reads
    /// `etc` itself) when anything is not as expected.
    pub fn new(etc: &std::path::Path, run_dir: &std::path::Path) -> Option<ConfOverlay> {
        let original = match std::fs::read(etc.join("lvmlocal.conf")) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return None,
        };
        let local = local_conf(original.as_deref())?;
        let dir = run_dir.join(format!("preroot-lvm-{}.d", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).ok()?;
        let overlay = ConfOverlay { dir };
        if let Ok(entries) = std::fs::read_dir(etc) {
            for e in entries {
                let name = e.ok()?.file_name();
                if name != "lvmlocal.conf" {
                    std::os::unix::fs::symlink(etc.join(&name), overlay.dir.join(&name)).ok()?;
                }
            }
        }
        std::fs::write(overlay.dir.join("lvmlocal.conf"), local).ok()?;
        Some(overlay)
    }

    /// What `LVM_SYSTEM_DIR` is set to.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for ConfOverlay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `commands` in one `lvm` process: a script (`#!` and one command per line, which
/// lvm runs in order and stops at the first failure, exiting with its status), written to a
/// private file in `/run`. One process instead of one per command: each `lvm` start costs
/// its library loading, configuration and device scan again.
fn run_script(commands: &[Vec<String>], opts: &Options) -> Result<(), GrowError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let lvm = lvm_path()?;
    let mut text = format!("#!{lvm}\n");
    for c in commands {
        for (i, arg) in c.iter().enumerate() {
            // lvm splits the line at spaces and honours double quotes; names of VGs, LVs and
            // device nodes never need more.
            if arg.contains(['"', '\n', '\\', '#']) {
                return Err(gerr(ErrorKind::Invalid, "lvm", format!("argument {arg:?}")));
            }
            if i > 0 {
                text.push(' ');
            }
            if arg.contains(' ') {
                text.push('"');
                text.push_str(arg);
                text.push('"');
            } else {
                text.push_str(arg);
            }
        }
        text.push('\n');
    }
    let dir = ["/run", "/tmp"]
        .into_iter()
        .find(|d| std::path::Path::new(d).is_dir())
        .unwrap_or("/tmp");
    let path = format!("{dir}/preroot-lvm-{}", std::process::id());
    let _ = std::fs::remove_file(&path);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(gerr(ErrorKind::Io, &path, e));
    }
    let names: Vec<&str> = commands
        .iter()
        .filter_map(|c| c.first().map(String::as_str))
        .collect();
    // No reserved memory (lvm's default reserves 8 MiB): before it suspends the LV, lvm
    // touches that reserve and then mlocks every mapping of its own, so that nothing it needs
    // while a device is suspended must be paged in from it. Here nothing can be: lvm runs from
    // the initramfs, the root is not mounted yet and there is no swap. Under TCG the touching
    // cost `lvextend` 104-151 ms and the mlock of the heap it grew (16.8 MiB) 96-104 ms, by
    // lvm's `-vvvv` timestamps in the Atomic boot; lvm still locks what it maps.
    let overlay = ConfOverlay::new(std::path::Path::new("/etc/lvm"), std::path::Path::new(dir));
    if overlay.is_none() {
        log::info!("grow: lvm keeps its reserved memory (/etc/lvm/lvmlocal.conf not extended)");
    }
    let result = run_lvm_named(
        &[path.as_str()],
        &format!("lvm {}", names.join(" + ")),
        overlay.as_ref().map(ConfOverlay::dir),
        opts,
    );
    drop(overlay);
    let _ = std::fs::remove_file(&path);
    result.map(|_| ())
}

/// Grows an LV: each PV's device first (its partition, or a LUKS mapping and its
/// partition: [`super::grow_device`]), then `pvresize` of the PVs that now fit more extents
/// and `lvextend -l +100%FREE` of the LV, in one `lvm` process, decided from the metadata on
/// the PVs ([`lvmmeta`]) so that nothing is started when nothing is to be done; `lvm`'s own
/// reports when that metadata is not understood. `depth` is the device stack's (see
/// [`super::grow_device`]).
pub fn grow(
    root: &Root,
    dev: &BlockDev,
    dm_name: &str,
    opts: &Options,
    report: &mut Report,
    depth: usize,
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
        super::grow_device(root, pv, opts, report, depth)?;
    }
    let (vg, lv) = split_dm_name(dm_name)
        .ok_or_else(|| gerr(ErrorKind::Invalid, dm_name, "not an LVM name"))?;
    let plan = match plan_from_metadata(root, &slaves, &vg, &lv, opts) {
        Ok(p) => p,
        Err(why) => {
            log::info!("grow: {vg}/{lv}: the LVM metadata on disk not used ({why}); asking lvm");
            plan_from_reports(&slaves, root, dm_name, opts)?
        }
    };
    let config = format!("--config={LVM_CONFIG}");
    let mut pv_cmds = Vec::new();
    for p in &plan.pvs {
        let mut a = Action::new("pv", p.node.clone());
        a.old_size = p.old;
        a.new_size = p.new;
        if p.grow {
            a.steps.push(format!("lvm pvresize {}", p.node));
            a.status = if opts.dry_run {
                Status::Planned
            } else {
                Status::Done
            };
            pv_cmds.push(vec!["pvresize".to_string(), config.clone(), p.node.clone()]);
        }
        report.actions.push(a);
    }
    let mut a = Action::new("lv", format!("/dev/{}", dev.name));
    a.format = Some(plan.lv.clone());
    a.old_size = plan.lv_old;
    a.new_size = plan.lv_new;
    let mut lv_cmds = Vec::new();
    if !opts.lv {
        a.status = Status::Skipped;
        a.note = Some("preroot.grow.lv=0".into());
    } else if plan.lv_grow {
        a.steps
            .push(format!("lvm lvextend -l +100%FREE {}", plan.lv));
        a.status = if opts.dry_run {
            Status::Planned
        } else {
            Status::Done
        };
        lv_cmds.push(vec![
            "lvextend".to_string(),
            config.clone(),
            "-l".into(),
            "+100%FREE".into(),
            plan.lv.clone(),
        ]);
    }
    let lv_index = report.actions.len();
    report.actions.push(a);
    if opts.dry_run || (pv_cmds.is_empty() && lv_cmds.is_empty()) {
        return Ok(());
    }
    let pv_nodes: Vec<std::path::PathBuf> = slaves.iter().map(|pv| pv.node(root)).collect();
    // The power-cut test between the two steps holds after pvresize: then they run as two
    // scripts (the disk state at the hold is the same as between two lines of one script).
    #[cfg(feature = "fault-injection")]
    let split = std::env::var("PREROOT_FAULT_AFTER_STEP").as_deref() == Ok("pvresize");
    #[cfg(not(feature = "fault-injection"))]
    let split = false;
    let groups: Vec<Vec<Vec<String>>> = if split {
        vec![pv_cmds.clone(), lv_cmds.clone()]
    } else {
        vec![pv_cmds.iter().chain(&lv_cmds).cloned().collect()]
    };
    for g in groups.into_iter().filter(|g| !g.is_empty()) {
        run_script(&g, opts)?;
        let has = |name: &str| g.iter().any(|c| c.first().is_some_and(|n| n == name));
        if has("pvresize") {
            log::info!(
                "grow: PV {} resized",
                pv_cmds
                    .iter()
                    .filter_map(|c| c.last().cloned())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if has("lvextend") {
            log::info!(
                "grow: LV {} extended by {} bytes",
                plan.lv,
                plan.lv_new.saturating_sub(plan.lv_old)
            );
        }
        #[cfg(feature = "fault-injection")]
        {
            if has("lvextend") {
                super::fault_after_step("lvextend", &pv_nodes);
            } else if has("pvresize") {
                super::fault_after_step("pvresize", &pv_nodes);
            }
        }
    }
    if plan.from_metadata {
        verify(&plan, &pv_nodes, &vg, &lv, report, lv_index)?;
    }
    let _ = (pv_nodes, plan.extent);
    Ok(())
}

/// After the script: the metadata on the PVs must say what the plan said (`lvm` exits 0 on
/// some commands that changed nothing).
fn verify(
    plan: &Plan,
    pv_nodes: &[std::path::PathBuf],
    vg: &str,
    lv: &str,
    report: &mut Report,
    lv_index: usize,
) -> Result<(), GrowError> {
    let mut newest: Option<lvmmeta::Vg> = None;
    for node in pv_nodes {
        if let Ok((_, m)) = read_pv_metadata(node) {
            if m.name == vg && newest.as_ref().is_none_or(|b| m.seqno > b.seqno) {
                newest = Some(m);
            }
        }
    }
    let Some(m) = newest else {
        log::warn!(
            "grow: {vg}/{lv}: the metadata could not be read back after lvm; trusting its status"
        );
        return Ok(());
    };
    let mut wrong = Vec::new();
    for (node, want) in &plan.expect {
        let got = read_pv_metadata(node)
            .ok()
            .and_then(|(l, _)| m.pv_by_uuid(&l.pv_uuid).map(|p| p.pe_count));
        if got != Some(*want) {
            wrong.push(format!(
                "{} has {got:?} extents, not {want}",
                node.display()
            ));
        }
    }
    let got_lv = m.lv(lv).map(|l| l.extents);
    if plan.lv_grow && got_lv != Some(plan.expect_lv_extents) {
        wrong.push(format!(
            "{vg}/{lv} has {got_lv:?} extents, not {}",
            plan.expect_lv_extents
        ));
    }
    if !wrong.is_empty() {
        return Err(gerr(
            ErrorKind::Io,
            format!("{vg}/{lv}"),
            format!("lvm exited 0 but the metadata says: {}", wrong.join("; ")),
        ));
    }
    if let (Some(a), Some(ext)) = (report.actions.get_mut(lv_index), got_lv) {
        a.new_size = ext.saturating_mul(m.extent_bytes());
    }
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
    fn local_conf_adds_the_reserve_or_leaves_it() {
        let add = b"activation {\n\treserved_memory = 0\n}\n";
        assert_eq!(local_conf(None).as_deref(), Some(&add[..]), "case no file");
        // Fedora's lvmlocal.conf: comments and a `local` section.
        let fedora = b"# comment\nlocal {\n\t# system_id = \"\"\n\thost_id = 7\n}";
        let mut want = fedora.to_vec();
        want.push(b'\n');
        want.extend_from_slice(add);
        assert_eq!(local_conf(Some(fedora)), Some(want), "case Fedora's");
        for (case, text) in [
            (
                "its own activation section",
                &b"activation { reserved_memory = 16384 }"[..],
            ),
            ("a path key", b"activation/reserved_memory = 1"),
            ("not parseable", b"local {"),
        ] {
            assert_eq!(local_conf(Some(text)), None, "case {case}");
        }
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
