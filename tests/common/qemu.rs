//! The QEMU harness from the tests' side (issue 4): boot a scenario of `qemu/scenario.sh`
//! (once, or several times on the same disk), parse the report the guest wrote to its second
//! serial port, and the assertions every scenario shares. Used by the `tests/qemu*.rs` files.

use super::{has_tool, is_root, missing};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One boot at a time: the guest build is shared and the machine has two cores.
/// [`run_scenario`] takes it for every scenario run; a test that runs another script
/// (`qemu/atomic.sh`) takes it itself.
pub static BOOTS: Mutex<()> = Mutex::new(());

/// preroot's `fetch` deadline when `preroot.timeout=` is not given (`run::DEFAULT_TIMEOUT`).
pub const FETCH_DEADLINE_MS: u64 = 20_000;

/// The guest's report: the sections between `@@@ BEGIN` and `@@@ END`.
#[derive(Debug)]
pub struct Report {
    pub sections: BTreeMap<String, String>,
    /// Where the raw files are, for assertion messages.
    pub dir: PathBuf,
}

impl Report {
    pub fn parse(text: &str, dir: &Path) -> Option<Report> {
        let body = text.split("@@@ BEGIN").nth(1)?;
        let body = body
            .split("@@@ END")
            .next()
            .filter(|_| text.contains("@@@ END"))?;
        let mut sections = BTreeMap::new();
        let mut name: Option<String> = None;
        let mut buf = String::new();
        for line in body.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(n) = line.strip_prefix("@@ ") {
                if let Some(prev) = name.take() {
                    sections.insert(prev, std::mem::take(&mut buf));
                }
                name = Some(n.trim().to_string());
            } else if name.is_some() {
                buf.push_str(line);
                buf.push('\n');
            }
        }
        if let Some(prev) = name {
            sections.insert(prev, buf);
        }
        Some(Report {
            sections,
            dir: dir.to_path_buf(),
        })
    }

    pub fn get(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    /// The lines under `# topic` in `section` (the probes of `qemu/report.d/` print
    /// `# TOPIC` headers), up to the next header.
    pub fn sub(&self, section: &str, topic: &str) -> String {
        let head = format!("# {topic}");
        let mut on = false;
        let mut out = String::new();
        for line in self.get(section).lines() {
            if line.starts_with("# ") {
                on = line == head;
            } else if on {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The guest's console (serial port 1) of this boot.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("console.log")).unwrap_or_default())
            .into_owned()
    }

    /// Section `name` parsed as JSON; fails the test when it is missing or does not parse
    /// ([`Report::try_json`] says how), never reads as `null`.
    pub fn json(&self, name: &str) -> Value {
        self.try_json(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Section `name` as JSON, or why not: "section NAME: not JSON (serde's reason):" and
    /// its first 8 lines, with the command's stderr (the guest's section `NAME.stderr`) and
    /// where the report is. The guest prints such a section as its command's stdout only
    /// (`jsec` in qemu/guest/preroot-report), so anything else in it is a harness bug to see,
    /// not an absent value: an `ip -j addr` section that began with iproute2's "Dump was
    /// interrupted" line once read as "no address" (issue 16, item 21).
    pub fn try_json(&self, name: &str) -> Result<Value, String> {
        let text = self.sections.get(name).ok_or_else(|| {
            format!(
                "section {name}: missing from the report in {}",
                self.dir.display()
            )
        })?;
        self.parse_json(&format!("section {name}"), text, name)
    }

    /// The lines under `# topic` in `section` (a probe of `qemu/report.d/`) as JSON; fails
    /// the test as [`Report::json`] does.
    pub fn json_sub(&self, section: &str, topic: &str) -> Value {
        self.try_json_sub(section, topic)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Report::try_json`] for the lines under `# topic` in `section`.
    pub fn try_json_sub(&self, section: &str, topic: &str) -> Result<Value, String> {
        self.parse_json(
            &format!("section {section}, topic {topic}"),
            &self.sub(section, topic),
            section,
        )
    }

    fn parse_json(&self, what: &str, text: &str, section: &str) -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| {
            let head: Vec<&str> = text.lines().take(8).collect();
            let head = if text.trim().is_empty() {
                "(empty)".to_string()
            } else {
                head.join("\n")
            };
            let stderr = match self.sections.get(&format!("{section}.stderr")) {
                Some(err) => format!(
                    "\nits stderr (section {section}.stderr):\n{}",
                    err.trim_end()
                ),
                None => String::new(),
            };
            format!(
                "{what}: not JSON ({e}):\n{head}{stderr}\n(report in {})",
                self.dir.display()
            )
        })
    }

    /// `preroot show --json` as the booted system printed it.
    pub fn context(&self) -> Value {
        self.json("show-json")
    }

    /// The root filesystem's size in bytes (`df` in section `rootfs`), 0 if missing.
    pub fn rootfs_bytes(&self) -> u64 {
        self.get("rootfs")
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Monotonic time (µs since kernel start) at which `unit` became active, 0 if never.
    pub fn unit_active_us(&self, unit: &str) -> u64 {
        self.get("units")
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(unit)).then(|| f.next().and_then(|t| t.parse().ok()))?
            })
            .unwrap_or(0)
    }
}

/// Boots `scenario` and returns the guest's report. `env` goes to `qemu/scenario.sh`.
pub fn boot(test: &str, scenario: &str, env: &[(&str, String)]) -> Report {
    boots(test, scenario, env, 1).remove(0)
}

/// Runs `qemu/scenario.sh scenario OUT` with `env` in a fresh OUT for `test`, holding
/// [`BOOTS`]; returns OUT and the script's status (the boots' files are in OUT and OUT/bootK).
pub fn run_scenario(
    test: &str,
    scenario: &str,
    env: &[(&str, String)],
) -> (PathBuf, std::process::ExitStatus) {
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("preroot-qemu-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("bash")
        .arg(repo.join("qemu/scenario.sh"))
        .arg(scenario)
        .arg(&out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .expect("run qemu/scenario.sh");
    (out, status)
}

/// After a power-cut run (`script` exited `status`, `started` at its start): prints the time
/// it took and returns `OUT/killed` (what `kill_on` saw), or fails the test with the console's
/// tail when `kill_on` never matched.
pub fn after_cut(
    test: &str,
    out: &Path,
    kill_on: &str,
    script: &str,
    status: std::process::ExitStatus,
    started: std::time::Instant,
) -> String {
    eprintln!(
        "{test}: power cut and re-boot in {:.1} s (host wall time incl. builds); files in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    std::fs::read_to_string(out.join("killed")).unwrap_or_else(|_| {
        panic!(
            "{test}: /{kill_on}/ never showed on the first boot's console ({script} {status}); \
             console tail:\n{}",
            console_tail(out, 40)
        )
    })
}

/// What a power-cut run left in its output directory once the re-boot finished.
pub struct CutFiles {
    /// `disk-check.env`: the host's check after the kill.
    pub check: std::collections::HashMap<String, String>,
    /// `boot2/result.env`: what the re-boot's script recorded.
    pub result: std::collections::HashMap<String, String>,
    /// The report of the boot after the power cut.
    pub after: Report,
}

/// Reads what a power-cut run (`script`, which exited `status`) left in `out`; fails the test
/// with the re-boot's console tail when `script` failed, or when the re-boot wrote no report.
pub fn cut_files(
    test: &str,
    out: &Path,
    script: &str,
    status: std::process::ExitStatus,
) -> CutFiles {
    let read_env = |p: PathBuf| env_file(&std::fs::read_to_string(p).unwrap_or_default());
    let check = read_env(out.join("disk-check.env"));
    let result = read_env(out.join("boot2/result.env"));
    let dir = out.join("boot2");
    assert!(
        status.success(),
        "{test}: {script} exited {status}; re-boot console tail:\n{}",
        console_tail(&dir, 40)
    );
    let report = std::fs::read(dir.join("report.log")).unwrap_or_default();
    let after = Report::parse(&String::from_utf8_lossy(&report), &dir)
        .unwrap_or_else(|| panic!("{test}: no report from the boot after the power cut"));
    CutFiles {
        check,
        result,
        after,
    }
}

impl CutFiles {
    /// The number `key` from the host's check, else from the re-boot's result; fails the test
    /// (naming `out`) when neither has it.
    pub fn num(&self, key: &str, out: &Path) -> u64 {
        self.check
            .get(key)
            .or_else(|| self.result.get(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no number {key} in {}: {:?} {:?}",
                    out.display(),
                    self.check,
                    self.result
                )
            })
    }
}

/// The last `lines` lines of a boot's console, for assertion messages.
pub fn console_tail(dir: &Path, lines: usize) -> String {
    let c = std::fs::read(dir.join("console.log")).unwrap_or_default();
    let c = String::from_utf8_lossy(&c).into_owned();
    let all: Vec<&str> = c.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Boots `scenario` `n` times on the same disk (`BOOTS=n`: a re-boot of the same instance)
/// and returns the guest's reports, first boot first.
pub fn boots(test: &str, scenario: &str, env: &[(&str, String)], n: usize) -> Vec<Report> {
    let started = std::time::Instant::now();
    let mut env = env.to_vec();
    env.insert(0, ("BOOTS", n.to_string()));
    let (out, status) = run_scenario(test, scenario, &env);
    let wall = started.elapsed();
    let reports = (1..=n)
        .map(|k| {
            let dir = if k == 1 {
                out.clone()
            } else {
                out.join(format!("boot{k}"))
            };
            let report = std::fs::read(dir.join("report.log")).unwrap_or_default();
            let report = String::from_utf8_lossy(&report);
            Report::parse(&report, &dir).unwrap_or_else(|| {
                panic!(
                    "{test}: boot {k} of {n}: the guest wrote no complete report (scenario.sh \
                     {status}, {wall:?}); files in {}; console tail:\n{}",
                    dir.display(),
                    console_tail(&dir, 60)
                )
            })
        })
        .collect();
    eprintln!(
        "{test}: {scenario} booted {n}x and reported in {:.1} s (host wall time incl. build)",
        wall.as_secs_f64()
    );
    assert!(
        status.success(),
        "{test}: scenario.sh {scenario} exited {status}; files in {}",
        out.display()
    );
    reports
}

/// What every scenario asserts: the boot reached multi-user.target, preroot ran its three
/// phases in the initramfs and left its context in /run/preroot.
pub fn assert_booted_with_preroot(test: &str, r: &Report) -> Value {
    let state = r.get("state").trim();
    assert!(
        state == "running",
        "{test}: system state {state:?}, not running; failed units:\n{}\njobs:\n{}",
        r.get("failed"),
        r.get("jobs")
    );
    let multi_user = r.unit_active_us("multi-user.target");
    assert!(
        multi_user > 0,
        "{test}: multi-user.target never became active:\n{}",
        r.get("units")
    );
    let switch_root = r.unit_active_us("initrd-switch-root.target");
    assert!(
        switch_root > 0 && switch_root < multi_user,
        "{test}: no initrd (initrd-switch-root.target at {switch_root} µs)"
    );
    assert!(
        r.get("run-preroot").contains("context.json"),
        "{test}: /run/preroot/context.json missing:\n{}",
        r.get("run-preroot")
    );
    let ctx = r.context();
    let phases: Vec<&str> = ctx["phases"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["phase"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        phases,
        ["fetch", "grow", "sysroot"],
        "{test}: phases recorded in the initramfs; context:\n{ctx:#}"
    );
    // The phases ran before the switch to the real root (their start is in ms since boot).
    for p in ctx["phases"].as_array().into_iter().flatten() {
        let start_us = p["started_ms"]
            .as_u64()
            .unwrap_or(u64::MAX)
            .saturating_mul(1000);
        assert!(
            start_us < switch_root,
            "{test}: phase {} started at {start_us} µs, after the switch root at {switch_root} µs",
            p["phase"]
        );
    }
    eprintln!(
        "{test}: initrd left at {:.1} s, multi-user.target at {:.1} s; phases: {}",
        switch_root as f64 / 1e6,
        multi_user as f64 / 1e6,
        ctx["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{} {} ms", p["phase"], p["duration_ms"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ctx
}

/// The OpenStack config drive of `lib.sh make_configdrive`, read in the initramfs.
pub fn assert_configdrive(test: &str, ctx: &Value) {
    assert_eq!(ctx["platform"], "openstack", "{test}: platform; {ctx:#}");
    assert_eq!(
        ctx["source"]["kind"], "config-drive",
        "{test}: source; {ctx:#}"
    );
    assert_eq!(
        ctx["instance_id"], "6a1c1a3b-1111-4222-8333-444455556666",
        "{test}: instance id from meta_data.json"
    );
    assert!(
        ctx["hostname"]
            .as_str()
            .is_some_and(|h| h.starts_with("preroot-qemu")),
        "{test}: hostname from meta_data.json; {ctx:#}"
    );
    assert_eq!(
        ctx["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: errors; {ctx:#}"
    );
    assert_eq!(
        ctx["phases"][0]["outcome"], "ok",
        "{test}: fetch outcome; {ctx:#}"
    );
}

/// The root is vda1 (ext4, label root) on a disk with partition table `pttype`, and the disk
/// is larger than the image (the overlay grew it), so there is space to grow into.
/// The root partition was grown to the disk's end (1 MiB aligned; GPT keeps its backup
/// table after it) and the mounted ext4 with it (issues 5's assertions in a real boot).
pub fn assert_root_disk(test: &str, r: &Report, ctx: &Value, pttype: &str) {
    let lsblk = r.json("lsblk");
    let vda = lsblk["blockdevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "vda"))
        .unwrap_or_else(|| panic!("{test}: no vda in lsblk: {lsblk:#}"));
    assert_eq!(vda["pttype"], pttype, "{test}: partition table; {vda:#}");
    let root = &vda["children"][0];
    assert_eq!(
        (&root["name"], &root["label"], &root["mountpoint"]),
        (
            &Value::from("vda1"),
            &Value::from("root"),
            &Value::from("/")
        ),
        "{test}: root partition; {vda:#}"
    );
    let (disk, part) = (
        vda["size"].as_u64().unwrap_or(0),
        root["size"].as_u64().unwrap_or(0),
    );
    // The partition starts at 1 MiB and ends on the last whole MiB before the end (GPT: before
    // its 33-sector backup), so at most 3 MiB of the disk are outside it.
    assert!(
        part + (3 << 20) >= disk && part < disk,
        "{test}: root partition {part} bytes not grown to the {disk}-byte disk; grow report: {:#}",
        ctx["extra"]["grow"]
    );
    let fs_size = r.rootfs_bytes();
    assert!(
        fs_size >= part / 100 * 90,
        "{test}: root filesystem {fs_size} bytes, partition {part}: ext4 not grown; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    assert_eq!(
        ctx["extra"]["grow_filesystem"]["status"], "done",
        "{test}: filesystem growth; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
}

/// The network files preroot wrote were read by the guest's systemd-networkd, which gave
/// the NIC `address`; the hostname came from the metadata (issue 7's assertions).
pub fn assert_configured(test: &str, r: &Report, address: &str, hostname: &str) {
    let files = r.get("network-files");
    assert!(
        files.contains("# /etc/systemd/network/10-preroot-"),
        "{test}: no preroot networkd file in the guest:\n{files}"
    );
    let ip = r.json("ip");
    let has = ip.as_array().into_iter().flatten().any(|l| {
        l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"] == address)
    });
    assert!(
        has,
        "{test}: {address} not configured by networkd; ip -j addr: {ip:#}\nfiles:\n{files}"
    );
    assert_eq!(r.get("hostname").trim(), hostname, "{test}: hostname");
}

pub fn require_qemu(test: &str) -> bool {
    let needs = [
        "qemu-system-x86_64",
        "qemu-img",
        "debootstrap",
        "xorriso",
        "sgdisk",
        "sfdisk",
        "mkfs.ext4",
        "socat",
        "flock",
        "unshare",
    ];
    if !is_root() {
        missing(test, "root (debootstrap, chroot)");
        return false;
    }
    if let Some(t) = needs.iter().find(|t| !has_tool(t)) {
        missing(
            test,
            &format!("the tool `{t}` (qemu/host-deps.sh installs it)"),
        );
        return false;
    }
    let kernel = std::fs::read_dir("/boot").ok().is_some_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if !kernel {
        missing(test, "a Debian kernel in /boot (linux-image-amd64)");
        return false;
    }
    true
}

/// The Atomic layout (`qemu/atomic.sh`): the first sector of p2 (the PV); p1 starts at 1 MiB
/// and is 256 MiB.
pub const P2_START: u64 = 2048 + 256 * 2048;

/// `KEY=VALUE` lines (`result.env`, `disk-check.env`).
pub fn env_file(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `lsblk -J` node named `name`, anywhere in the tree.
pub fn find_dev<'a>(devs: &'a Value, name: &str) -> Option<&'a Value> {
    devs.as_array()?.iter().find_map(|d| {
        if d["name"] == name {
            Some(d)
        } else {
            find_dev(&d["children"], name)
        }
    })
}

/// An lsblk node's size in bytes (a number, or a string in older lsblk).
pub fn size(dev: &Value) -> u64 {
    dev["size"]
        .as_u64()
        .or_else(|| dev["size"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no size in {dev}"))
}
