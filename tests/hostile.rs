//! Issue 16, items 1-5 and 7 (resource amplification, special files, links out of a medium):
//! hostile media and documents built by hand, each ending in a one-line error within its
//! deadline and under a memory limit: never a hang, a panic, or a read outside the medium.
//! The last test runs them all under `ulimit -v` and prints the peak RSS of each
//! (docs/faults.md, "Round 2: resources and readers").
mod common;

use common::TempDir;
use preroot::media::{self, iso9660, MediaErrorKind, Tree};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BLOCK: usize = 2048;

/// One SUSP entry (SUSP 1.12 §4.1): signature, length, version 1, data.
fn su(sig: &[u8; 2], data: &[u8]) -> Vec<u8> {
    let mut e = vec![sig[0], sig[1], (4 + data.len()) as u8, 1];
    e.extend_from_slice(data);
    e
}

/// A both-byte-order 32-bit field (ECMA-119 §7.3.3).
fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// A `CE` entry: the next System Use bytes are `len` bytes at `offset` in `block`.
fn ce(block: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [block, offset, len] {
        d.extend(both32(v));
    }
    su(b"CE", &d)
}

/// An `NM` entry holding `name`.
fn nm(name: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8];
    d.extend_from_slice(name);
    su(b"NM", &d)
}

/// A directory record (ECMA-119 §9.1) with `system_use` after the identifier.
fn record(ident: &[u8], dir: bool, extent: (u32, u32), system_use: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 33];
    r[2..10].copy_from_slice(&both32(extent.0));
    r[10..18].copy_from_slice(&both32(extent.1));
    r[25] = if dir { 2 } else { 0 };
    r[28..32].copy_from_slice(&[1, 0, 0, 1]);
    r[32] = ident.len() as u8;
    r.extend_from_slice(ident);
    if ident.len() % 2 == 0 {
        r.push(0);
    }
    r.extend_from_slice(system_use);
    if r.len() % 2 == 1 {
        r.push(0);
    }
    r[0] = r.len() as u8;
    r
}

/// An ISO9660 image with Rock Ridge, written by hand: directories are lists of records
/// (after `.` and `..`), areas are raw bytes at a block.
struct Iso {
    img: Vec<u8>,
}

impl Iso {
    fn new() -> Iso {
        let mut img = vec![0u8; 18 * BLOCK];
        let pvd = 16 * BLOCK;
        img[pvd..pvd + 7].copy_from_slice(b"\x01CD001\x01");
        img[pvd + 40..pvd + 72].copy_from_slice(format!("{:<32}", "config-2").as_bytes());
        img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        img[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
        img[17 * BLOCK..17 * BLOCK + 7].copy_from_slice(b"\xffCD001\x01");
        Iso { img }
    }

    fn next_block(&self) -> u32 {
        self.img.len().div_ceil(BLOCK) as u32
    }

    /// Puts `bytes` at the next free block; returns it.
    fn area(&mut self, bytes: &[u8]) -> u32 {
        let at = self.next_block();
        self.img.resize(at as usize * BLOCK, 0);
        self.img.extend_from_slice(bytes);
        self.img.resize(self.img.len().div_ceil(BLOCK) * BLOCK, 0);
        at
    }

    /// Writes a directory of `records` (records never cross a block) and returns its extent.
    /// `root` gives its `.` record the Rock Ridge `SP` and `ER` entries.
    fn dir(&mut self, records: &[Vec<u8>], root: bool) -> (u32, u32) {
        let dot_su = if root {
            let mut s = su(b"SP", &[0xBE, 0xEF, 0]);
            let mut er = vec![10, 0, 0, 1];
            er.extend_from_slice(b"RRIP_1991A");
            s.extend(su(b"ER", &er));
            s
        } else {
            Vec::new()
        };
        let at = self.next_block();
        let dot = |len: u32| record(&[0], true, (at, len), &dot_su);
        let dotdot = |len: u32| record(&[1], true, (at, len), &[]);
        let lay = |len: u32| {
            let mut out: Vec<u8> = Vec::new();
            let mut used = 0;
            for r in [dot(len), dotdot(len)].iter().chain(records) {
                if used + r.len() > BLOCK {
                    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
                    used = 0;
                }
                used += r.len();
                out.extend_from_slice(r);
            }
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
            out
        };
        let len = lay(0).len() as u32;
        let out = lay(len);
        assert_eq!(self.area(&out), at);
        (at, len)
    }

    /// Points the primary volume descriptor at `root` and writes the image.
    fn write(mut self, root: (u32, u32), path: &Path) {
        let pvd = 16 * BLOCK;
        let r = record(&[0], true, root, &[]);
        self.img[pvd + 156..pvd + 156 + 34].copy_from_slice(&r);
        let blocks = self.img.len() / BLOCK;
        self.img[pvd + 80..pvd + 88].copy_from_slice(&both32(blocks as u32));
        std::fs::write(path, &self.img).unwrap();
    }
}

/// A chain of `hops` continuation areas of `len` bytes each (the first `fill` of them
/// entries), the last without a `CE`: the areas' first block.
fn ce_chain(iso: &mut Iso, hops: usize, len: usize, fill: &dyn Fn() -> Vec<u8>) -> u32 {
    let per = len.div_ceil(BLOCK) as u32;
    let first = iso.next_block();
    for k in 0..hops {
        let mut area = Vec::new();
        while area.len() + 300 + 28 < len {
            area.extend(fill());
        }
        if k + 1 < hops {
            area.extend(ce(first + (k as u32 + 1) * per, 0, len as u32));
        }
        area.resize(len, 0);
        let at = iso.area(&area);
        assert_eq!(at, first + k as u32 * per);
    }
    first
}

/// The hostile ISO images, written to `dir`: (case, path, what reading it must say).
fn hostile_isos(dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let mut out = Vec::new();
    // The issue's image: a root of ~16,800 records, each name chained through 8
    // continuation areas of ~7.8 KB (62 KB a name; 1 GB of names before issue 16).
    let mut iso = Iso::new();
    let first = ce_chain(&mut iso, 8, 7800, &|| nm(&[b'n'; 250]));
    let recs: Vec<Vec<u8>> = (0..16_800)
        .map(|_| record(b"A", false, (0, 0), &ce(first, 0, 7800)))
        .collect();
    let root = iso.dir(&recs, true);
    let p = dir.join("names-62k.iso");
    iso.write(root, &p);
    out.push((
        "16,800 names of 62 KB over 8 continuation areas",
        p,
        "crosses the 2048-byte block",
    ));
    // The same within Linux's rule (each area in one block): 16 KB of System Use a record,
    // 13,000 records (under the 1 MiB directory limit).
    let mut iso = Iso::new();
    let first = ce_chain(&mut iso, 8, 2048, &|| su(b"ZZ", &[0; 200]));
    let recs: Vec<Vec<u8>> = (0..13_000u32)
        .map(|i| {
            let mut s = nm(format!("f{i}").as_bytes());
            s.extend(ce(first, 0, 2048));
            record(b"A", false, (0, 0), &s)
        })
        .collect();
    let root = iso.dir(&recs, true);
    let p = dir.join("su-16k.iso");
    iso.write(root, &p);
    out.push((
        "13,000 records with 16 KB of System Use each",
        p,
        "more than 2097152 bytes of Rock Ridge",
    ));
    // One name of 500 bytes, over two continuation areas.
    let mut iso = Iso::new();
    let first = ce_chain(&mut iso, 2, 2048, &|| nm(&[b'n'; 250]));
    let root = iso.dir(&[record(b"A", false, (0, 0), &ce(first, 0, 2048))], true);
    let p = dir.join("long-name.iso");
    iso.write(root, &p);
    out.push((
        "a name of 3.5 KB over two continuation areas",
        p,
        "a Rock Ridge name longer than 255 bytes",
    ));
    out
}

/// Issue 16 item 1: the Rock Ridge bombs end in an error naming the limit, within a second,
/// through the library; and through `preroot context --timeout 3` and the boot's detection
/// path (a fake `dev/sr0`, `preroot.timeout=5`) within their deadlines.
#[test]
fn iso_rock_ridge_amplification() {
    let tmp = TempDir::new("hostile-iso");
    for (case, img, want) in hostile_isos(tmp.path()) {
        let started = Instant::now();
        let (tree, _) = media::open(&img).unwrap_or_else(|e| panic!("{case}: open: {e}"));
        let e = tree
            .read("openstack/latest/meta_data.json", 1 << 20)
            .expect_err(case);
        assert!(
            matches!(e.kind, MediaErrorKind::Corrupt(_)) && e.to_string().contains(want),
            "{case}: {e}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{case}: {took:?}");

        let run = limited(
            &[
                "context",
                "--from",
                &format!("configdrive:{}", img.display()),
                "--timeout",
                "3",
            ],
            &tmp.path().join("state"),
            LIMIT_KIB,
            Duration::from_secs(3),
        );
        assert_eq!(run.code, Some(1), "{case}: {run:?}");
        assert_one_line(&run, &["preroot: ", want], case);
    }
    // The boot's detection path, on the issue's image.
    let img = tmp.path().join("names-62k.iso");
    let root = tmp.path().join("machine");
    common::fake_machine(&root, "preroot.timeout=5\n", &[]);
    std::fs::create_dir_all(root.join("sys/class/block/sr0")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    symlink(&img, root.join("dev/sr0")).unwrap();
    let state = tmp.path().join("boot-state");
    let run = limited(
        &["run", "--phase", "fetch", "--root", root.to_str().unwrap()],
        &state,
        LIMIT_KIB,
        Duration::from_secs(5),
    );
    assert_eq!(run.code, Some(0), "fetch: {run:?}");
    let ctx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("context.json")).unwrap()).unwrap();
    let errors = ctx["errors"].to_string();
    assert!(errors.contains("crosses the 2048-byte block"), "{errors}");
}

/// Issue 16 item 1: each image's Rock Ridge bytes are bounded too, not only each directory's
/// (a directory parsed again, or many directories).
#[test]
fn iso_rock_ridge_bytes_per_image() {
    let tmp = TempDir::new("hostile-iso-image");
    let mut iso = Iso::new();
    let first = ce_chain(&mut iso, 8, 2048, &|| su(b"ZZ", &[0; 200]));
    // Ten directories of 120 records with 16 KB of System Use each: 1.97 MB a directory
    // (under the directory's limit), 19.7 MB in all (over the image's).
    let mut subdirs = Vec::new();
    for d in 0..10 {
        let recs: Vec<Vec<u8>> = (0..120u32)
            .map(|i| {
                let mut s = nm(format!("f{i}").as_bytes());
                s.extend(ce(first, 0, 2048));
                record(b"A", false, (0, 0), &s)
            })
            .collect();
        let extent = iso.dir(&recs, false);
        subdirs.push(record(b"D", true, extent, &nm(format!("d{d}").as_bytes())));
    }
    let root = iso.dir(&subdirs, true);
    let img = tmp.path().join("ten-dirs.iso");
    iso.write(root, &img);
    let tree = iso9660::IsoTree::open(&img).unwrap();
    let mut listed = 0;
    let e = loop {
        match tree.list(&format!("d{listed}")) {
            Ok(Some(names)) => {
                assert_eq!(names.len(), 120, "d{listed}");
                listed += 1;
            }
            other => break other,
        }
    };
    let e = e.expect_err("the tenth directory");
    assert!(
        e.to_string().contains(
            "more than 16777216 bytes of Rock Ridge (System Use) data read from this image"
        ),
        "{e}"
    );
    assert_eq!(listed, 8, "directories read before the image's limit");
    // Listed again, a directory comes from the cache: no more System Use is read.
    assert_eq!(tree.list("d3").unwrap().map(|n| n.len()), Some(120));
}

/// Peak RSS and exit of one `preroot` run.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kib: i64,
    took: Duration,
}

/// The memory limit every hostile run gets (`ulimit -v`, KiB): the debug binary maps ~40 MiB
/// before reading anything.
const LIMIT_KIB: u64 = 256 * 1024;

/// GNU time, for the peak RSS of one run (`%M`, KiB).
const TIME: &str = "/usr/bin/time";

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs `preroot ARGS --state-dir STATE` under `ulimit -v limit_kib`, killed (and the test
/// failed) at `deadline` plus 1.5 s; its exit, output, peak RSS (from `wait4`) and time.
fn limited(args: &[&str], state: &Path, limit_kib: u64, deadline: Duration) -> Run {
    // GNU time reports the peak RSS of preroot alone: a child's own `ru_maxrss` also holds
    // the test process's resident set it was forked with (Linux keeps it across exec).
    let peak_file = state.with_extension(format!("peak{}", RUNS.fetch_add(1, Ordering::Relaxed)));
    let timer = if Path::new(TIME).exists() {
        format!("{TIME} -q -f %M -o '{}' ", peak_file.display())
    } else {
        String::new()
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit_kib} && exec {timer}\"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .args(["--state-dir", state.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let limit = deadline + Duration::from_millis(1500);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "preroot {args:?} still running after {:?} (deadline {deadline:?})",
                started.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let peak_kib = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.trim().lines().last()?.parse().ok())
        .unwrap_or(-1);
    let _ = std::fs::remove_file(&peak_file);
    // Under GNU time a signal shows as exit 128 + N.
    use std::os::unix::process::ExitStatusExt;
    let code = status.code();
    let signal = status
        .signal()
        .or(code.filter(|c| *c > 128).map(|c| c - 128));
    Run {
        code: code.filter(|c| *c <= 128),
        signal,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        peak_kib,
        took,
    }
}

/// Exactly one line on stderr, holding every needle.
fn assert_one_line(run: &Run, needles: &[&str], case: &str) {
    assert_eq!(run.stderr.lines().count(), 1, "{case}: {run:?}");
    for n in needles {
        assert!(run.stderr.contains(n), "{case}: lacks {n:?}: {run:?}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// A change made to a fresh copy of the config drive fixture.
type Plant = Box<dyn Fn(&Path, &Path)>;

/// Issue 16 items 7 and 5: a directory datasource never follows a link (out of the tree or
/// within it: `user_data -> /etc/shadow`, a `meta_data.json` linked elsewhere, a linked
/// `latest/`) and never reads a FIFO, socket or device: each is an error naming it. Through
/// `preroot context --from configdrive:DIR --timeout 2` too: one line within the deadline, and
/// no secret holds what a link points at.
#[test]
fn dir_tree_refuses_links_and_special_files() {
    let tmp = TempDir::new("hostile-dir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("latest")).unwrap();
    std::fs::write(outside.join("secret"), "root:$6$not-yours:19000::::::\n").unwrap();
    std::fs::write(outside.join("meta.json"), r#"{"uuid": "stolen-identity"}"#).unwrap();
    std::fs::write(
        outside.join("latest/meta_data.json"),
        r#"{"uuid": "stolen"}"#,
    )
    .unwrap();
    let latest = "openstack/latest";
    let replace = |d: &Path, rel: &str| {
        let p = d.join(rel);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
        p
    };
    let secret = outside.join("secret");
    let cases: Vec<(&str, Plant, &str, &str)> = vec![
        (
            "user_data -> an absolute path out of the medium",
            Box::new(move |d, o| {
                symlink(o.join("secret"), replace(d, &format!("{latest}/user_data"))).unwrap()
            }),
            "openstack/latest/user_data",
            "a symbolic link to \"",
        ),
        (
            "user_data -> a relative path out of the medium",
            Box::new(move |d, _| {
                symlink(
                    "../../../outside/secret",
                    replace(d, &format!("{latest}/user_data")),
                )
                .unwrap()
            }),
            "openstack/latest/user_data",
            "a symbolic link to \"../../../outside/secret\": links on a medium are never followed",
        ),
        (
            "meta_data.json linked to a file elsewhere",
            Box::new(move |d, o| {
                symlink(
                    o.join("meta.json"),
                    replace(d, &format!("{latest}/meta_data.json")),
                )
                .unwrap()
            }),
            "openstack/latest/meta_data.json",
            "a symbolic link to",
        ),
        (
            "latest/ linked out of the medium",
            Box::new(move |d, o| symlink(o.join("latest"), replace(d, latest)).unwrap()),
            "openstack/latest/meta_data.json",
            "openstack/latest: damaged or unsupported: a symbolic link to",
        ),
        (
            "latest/ linked within the medium",
            Box::new(move |d, _| symlink("2015-10-15", replace(d, latest)).unwrap()),
            "openstack/latest/meta_data.json",
            "a symbolic link to \"2015-10-15\"",
        ),
        (
            "FIFO as network_data.json",
            Box::new(move |d, _| mkfifo(&d.join(format!("{latest}/network_data.json")))),
            "openstack/latest/network_data.json",
            "a FIFO, not a regular file",
        ),
        (
            "socket as vendor_data.json",
            Box::new(move |d, _| {
                let p = replace(d, &format!("{latest}/vendor_data.json"));
                std::mem::forget(std::os::unix::net::UnixListener::bind(p).unwrap());
            }),
            "openstack/latest/vendor_data.json",
            "a socket, not a regular file",
        ),
    ];
    for (n, (case, plant, path, want)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("drive{n}"));
        copy_tree(
            &common::fixtures().join("openstack/cloudinit-configdrive-v2-full/input"),
            &dir,
        );
        plant(&dir, &outside);
        let tree = media::DirTree::new(&dir);
        let started = Instant::now();
        let e = tree.read(path, 1 << 20).expect_err(case);
        assert!(
            matches!(e.kind, MediaErrorKind::Corrupt(_)) && e.to_string().contains(want),
            "{case}: {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{case}");

        let state = tmp.path().join(format!("state{n}"));
        let run = limited(
            &[
                "context",
                "--from",
                &format!("configdrive:{}", dir.display()),
                "--timeout",
                "2",
            ],
            &state,
            LIMIT_KIB,
            Duration::from_secs(2),
        );
        assert_eq!(run.code, Some(1), "{case}: {run:?}");
        assert_one_line(&run, &["preroot: ", "openstack/latest"], case);
        assert!(!run.stdout.contains("stolen"), "{case}: {run:?}");
        if let Ok(files) = std::fs::read_dir(&state) {
            for f in files.flatten() {
                let data = std::fs::read(f.path()).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&data).contains("not-yours"),
                    "{case}: {} holds the outside secret",
                    f.path().display()
                );
            }
        }
    }
    assert!(secret.exists());
}

/// Issue 16 item 5: no FIFO or device is ever read or waited on: a FIFO or `/dev/zero`
/// given as a medium (`--from`, or as `dev/sr0` of the boot's detection), a FIFO as the
/// context `render` reads, a secret path in `context.json` naming `/dev/zero` or a FIFO, and
/// a FIFO as `apply`'s user-data log. Each ends within its deadline with the problem named.
#[test]
fn fifos_and_devices_are_never_read() {
    let tmp = TempDir::new("hostile-fifo");
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    let state = tmp.path().join("state");
    for (case, medium, want) in [
        (
            "a FIFO as the medium",
            fifo.to_str().unwrap(),
            "a FIFO, not an image file or a block device",
        ),
        (
            "/dev/zero as the medium",
            "/dev/zero",
            "a character device, not an image file or a block device",
        ),
    ] {
        let run = limited(
            &[
                "context",
                "--from",
                &format!("nocloud:{medium}"),
                "--timeout",
                "2",
            ],
            &state,
            LIMIT_KIB,
            Duration::from_secs(2),
        );
        assert_eq!(run.code, Some(1), "{case}: {run:?}");
        assert_one_line(&run, &[medium, want], case);
    }
    // The boot's detection: dev/sr0 is a FIFO; the probe says so and the boot goes on.
    let root = tmp.path().join("machine");
    common::fake_machine(&root, "preroot.timeout=3\n", &[]);
    std::fs::create_dir_all(root.join("sys/class/block/sr0")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    mkfifo(&root.join("dev/sr0"));
    let run = limited(
        &["run", "--phase", "fetch", "--root", root.to_str().unwrap()],
        &tmp.path().join("boot-state"),
        LIMIT_KIB,
        Duration::from_secs(3),
    );
    assert_eq!(run.code, Some(0), "fetch: {run:?}");
    // render reads its context from a FIFO.
    let out = tmp.path().join("out");
    let run = limited(
        &[
            "render",
            "--context",
            fifo.to_str().unwrap(),
            "--format",
            "networkd",
            "--out",
            out.to_str().unwrap(),
        ],
        &state,
        LIMIT_KIB,
        Duration::from_secs(2),
    );
    assert_eq!(run.code, Some(1), "render: {run:?}");
    assert_one_line(
        &run,
        &[fifo.to_str().unwrap(), "a FIFO, not a regular file"],
        "render",
    );
}

/// A state directory whose context names `user_data` at `user_data` (any path).
fn state_with_user_data(state: &Path, user_data: &Path) {
    std::fs::create_dir_all(state).unwrap();
    let ctx = serde_json::json!({
        "schema_version": 1,
        "platform": "openstack",
        "source": {"kind": "config-drive", "medium": "directory", "location": "test"},
        "instance_id": "i-hostile",
        "errors": [],
        "fallbacks": [],
        "extra": {},
        "user_data": {"path": user_data.to_str().unwrap(), "size": 10, "type": "script"}
    });
    std::fs::write(
        state.join("context.json"),
        serde_json::to_vec(&ctx).unwrap(),
    )
    .unwrap();
}

/// Issue 16 item 5, in `apply`: a secret path naming `/dev/zero` or a FIFO, and a FIFO as the
/// user-data log. Needs root (`apply --root` runs programs chrooted).
#[test]
fn apply_never_waits_on_a_fifo() {
    require!("apply_never_waits_on_a_fifo"; root, "chroot");
    let tmp = TempDir::new("hostile-apply");
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    for (case, secret, want) in [
        (
            "user data is /dev/zero",
            PathBuf::from("/dev/zero"),
            "/dev/zero: a character device, not a regular file",
        ),
        (
            "user data is a FIFO",
            fifo.clone(),
            "a FIFO, not a regular file",
        ),
    ] {
        let root = tmp
            .path()
            .join(format!("root-{}", secret.display().to_string().len()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let state = tmp
            .path()
            .join(format!("state-{}", secret.display().to_string().len()));
        state_with_user_data(&state, &secret);
        let run = limited(
            &["apply", "--root", root.to_str().unwrap()],
            &state,
            LIMIT_KIB,
            Duration::from_secs(10),
        );
        assert_ne!(run.code, None, "{case}: {run:?}");
        let status = std::fs::read_to_string(state.join("apply.json")).unwrap();
        assert!(status.contains(want), "{case}: {status}");
    }
    // The user-data log is a FIFO: the script's output has nowhere to go, and apply says so.
    let root = tmp.path().join("root-log");
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    mkfifo(&root.join("var/log/preroot-user-data.log"));
    let script = tmp.path().join("user-data");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let state = tmp.path().join("state-log");
    state_with_user_data(&state, &script);
    let run = limited(
        &["apply", "--root", root.to_str().unwrap()],
        &state,
        LIMIT_KIB,
        Duration::from_secs(10),
    );
    assert_ne!(run.code, None, "log: {run:?}");
    let status = std::fs::read_to_string(state.join("apply.json")).unwrap();
    assert!(
        status.contains("var/log/preroot-user-data.log: a FIFO or socket, not a regular file"),
        "{status}"
    );
}

/// A NoCloud seed directory with `meta-data` (and an ordinary `user-data`).
fn nocloud_dir(dir: &Path, meta_data: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("meta-data"), meta_data).unwrap();
    std::fs::write(dir.join("user-data"), "#cloud-config\n{}\n").unwrap();
    dir.to_path_buf()
}

/// `levels` levels of `fan`-way aliases, the first of `leaf` scalars.
fn alias_levels(levels: usize, fan: usize, leaf: &str) -> String {
    let mut s = format!(
        "instance-id: i-bomb\na0: &a0 [{}]\n",
        vec![leaf; fan].join(", ")
    );
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); fan].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

/// Runs a shell pipeline, its stdout.
fn sh(script: &str) -> Vec<u8> {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One hostile input of the memory table: which reader, what, the command (without
/// `--state-dir`), its deadline, and the most RSS it may take (KiB).
struct Row {
    reader: &'static str,
    case: String,
    args: Vec<String>,
    /// The state directory, when the command needs one of its own (`apply`).
    state: Option<PathBuf>,
    deadline: Duration,
    bound_kib: i64,
}

/// Issue 16 (the memory bound of every reader): every hostile input of this round, run as
/// the boot or `apply` runs it, under `ulimit -v` 256 MiB: each ends by itself (exit 0 or 1,
/// never a signal) within its deadline, below the peak RSS docs/faults.md states for its
/// reader. With `--nocapture` it prints the table of docs/faults.md.
#[test]
fn hostile_inputs_under_a_memory_limit() {
    require!("hostile_inputs_under_a_memory_limit"; root, "chroot", "xorriso", "mkfs.vfat", "mcopy", "mkfs.ext4", "gzip", "base64", "time");
    let tmp = TempDir::new("hostile-memory");
    let t = tmp.path();
    let from = |spec: &str, p: &Path| {
        vec![
            "context".to_string(),
            "--from".into(),
            format!("{spec}:{}", p.display()),
            "--timeout".into(),
            "5".into(),
        ]
    };
    let mut rows: Vec<Row> = Vec::new();
    let secs = Duration::from_secs;

    for (case, img, _) in hostile_isos(t) {
        rows.push(Row {
            reader: "ISO9660",
            case: case.into(),
            args: from("configdrive", &img),
            state: None,
            deadline: secs(5),
            bound_kib: 24 << 10,
        });
    }

    // Every document at its cap: what a medium may make preroot hold (user data and both
    // vendor data files at 16 MiB, meta_data.json and network_data.json at 1 MiB).
    let full = t.join("full-src");
    copy_tree(
        &common::fixtures().join("openstack/cloudinit-configdrive-v2-full/input"),
        &full,
    );
    let latest = full.join("openstack/latest");
    let pad = |prefix: &str, suffix: &str, size: usize| {
        let mut v = prefix.as_bytes().to_vec();
        v.resize(size - suffix.len(), b'x');
        v.extend_from_slice(suffix.as_bytes());
        v
    };
    std::fs::write(
        latest.join("user_data"),
        pad("#!/bin/sh\n#", "\n", 16 << 20),
    )
    .unwrap();
    for f in ["vendor_data.json", "vendor_data2.json"] {
        std::fs::write(
            latest.join(f),
            pad("{\"cloud-init\": \"#!/bin/sh\\n#", "\"}", 16 << 20),
        )
        .unwrap();
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest.join("meta_data.json")).unwrap()).unwrap();
    let mut meta = meta.as_object().unwrap().clone();
    meta.insert("pad".into(), "x".repeat((1 << 20) - 4096).into());
    std::fs::write(
        latest.join("meta_data.json"),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    let img = t.join("full.iso");
    sh(&format!(
        "xorriso -as mkisofs -quiet -R -J -V config-2 -o {} {}",
        img.display(),
        full.display()
    ));
    rows.push(Row {
        reader: "ISO9660",
        case: "user_data, vendor_data.json, vendor_data2.json at 16 MiB, meta_data.json at 1 MiB"
            .into(),
        args: from("configdrive", &img),
        state: None,
        deadline: secs(5),
        bound_kib: 64 << 10,
    });

    // FAT and ext4: the config drive with a directory near the 1 MiB limit in
    // openstack/latest, the largest a directory parse makes (FAT: 3,500 names of 104 bytes,
    // 9 entries each; ext4: 1,000 of 244 bytes, a quarter of its limit: `mkfs.ext4 -d` takes
    // 16 s for 3,500 files in one directory).
    let tree_with = |name: &str, files: usize, len: usize| {
        let src = t.join(name);
        copy_tree(
            &common::fixtures().join("openstack/cloudinit-configdrive-v2-full/input"),
            &src,
        );
        for i in 0..files {
            let f = format!("openstack/latest/{i:04}{}", "n".repeat(len - 4));
            std::fs::write(src.join(f), "").unwrap();
        }
        src
    };
    let src = tree_with("fat-src", 3500, 104);
    let fat = t.join("big-dir.fat");
    sh(&format!(
        "mkfs.vfat -F 32 -n config-2 -C {0} 65536 >/dev/null 2>&1 && mcopy -s -i {0} {1}/* ::/",
        fat.display(),
        src.display()
    ));
    rows.push(Row {
        reader: "FAT",
        case: "3,500 names of 104 bytes in openstack/latest (a 1 MiB directory)".into(),
        args: from("configdrive", &fat),
        state: None,
        deadline: secs(5),
        bound_kib: 24 << 10,
    });
    let src = tree_with("ext-src", 1000, 244);
    let ext = t.join("big-dir.ext4");
    sh(&format!(
        "mkfs.ext4 -q -d {} -L config-2 {} 64M",
        src.display(),
        ext.display()
    ));
    rows.push(Row {
        reader: "ext4",
        case: "1,000 names of 244 bytes in openstack/latest (a 256 KiB directory)".into(),
        args: from("configdrive", &ext),
        state: None,
        deadline: secs(5),
        bound_kib: 24 << 10,
    });

    // A directory datasource: links and a FIFO.
    let dir = t.join("dir-drive");
    copy_tree(
        &common::fixtures().join("openstack/cloudinit-configdrive-v2-full/input"),
        &dir,
    );
    let _ = std::fs::remove_file(dir.join("openstack/latest/user_data"));
    symlink("/etc/shadow", dir.join("openstack/latest/user_data")).unwrap();
    mkfifo(&dir.join("openstack/latest/network_data.json"));
    rows.push(Row {
        reader: "directory",
        case: "user_data -> /etc/shadow, a FIFO as network_data.json".into(),
        args: from("configdrive", &dir),
        state: None,
        deadline: secs(5),
        bound_kib: 24 << 10,
    });

    // YAML: NoCloud meta-data (1 MiB cap).
    for (case, doc) in [
        (
            "meta-data: four levels of 64-way aliases (1.3 KB)",
            alias_levels(4, 64, "x"),
        ),
        ("meta-data: billion laughs", alias_levels(10, 9, "lol")),
        (
            "meta-data: a dense list at the 1 MiB cap",
            format!("instance-id: i-1\nx: [{}]\n", vec!["a"; 500_000].join(",")),
        ),
    ] {
        let d = nocloud_dir(&t.join(format!("nocloud-{}", rows.len())), &doc);
        rows.push(Row {
            reader: "YAML",
            case: case.into(),
            args: from("nocloud", &d),
            state: None,
            deadline: secs(5),
            bound_kib: 24 << 10,
        });
    }

    // User data in apply (16 MiB cap): the issue's gzip write_files, an alias bomb, and the
    // densest cloud-config under the cap.
    let zeros = String::from_utf8(sh("head -c 16777216 /dev/zero | gzip -9 | base64 -w0")).unwrap();
    let mut gz = String::from("#cloud-config\nwrite_files:\n");
    for i in 0..40 {
        gz.push_str(&format!(
            "  - path: /var/tmp/zero{i}\n    encoding: gz+b64\n    content: {zeros}\n"
        ));
    }
    let dense = format!(
        "#cloud-config\npackages: [{}]\n",
        vec!["a"; 8_000_000].join(",")
    );
    for (case, data) in [
        (
            format!(
                "40 gzip write_files of 16 MiB of zeros ({} KB)",
                gz.len() / 1000
            ),
            gz.into_bytes(),
        ),
        (
            "cloud-config: four levels of 64-way aliases".to_string(),
            format!("#cloud-config\n{}", alias_levels(4, 64, "x")).into_bytes(),
        ),
        (
            format!(
                "cloud-config: a dense list of {} MB",
                dense.len() / 1_000_000
            ),
            dense.into_bytes(),
        ),
    ] {
        let n = rows.len();
        let root = t.join(format!("root{n}"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let ud = t.join(format!("user-data{n}"));
        std::fs::write(&ud, data).unwrap();
        state_with_user_data(&t.join(format!("apply-state{n}")), &ud);
        rows.push(Row {
            reader: "user data (apply)",
            case,
            args: vec!["apply".into(), "--root".into(), root.display().to_string()],
            state: Some(t.join(format!("apply-state{n}"))),
            deadline: secs(30),
            bound_kib: 160 << 10,
        });
    }

    println!(
        "| reader | hostile input | outcome | peak RSS | bound | time |\n|---|---|---|---|---|---|"
    );
    let mut failures = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let args: Vec<&str> = row.args.iter().map(String::as_str).collect();
        let state = row
            .state
            .clone()
            .unwrap_or_else(|| t.join(format!("state{n}")));
        let run = limited(&args, &state, LIMIT_KIB, row.deadline);
        let outcome = match (run.code, run.stderr.lines().next()) {
            (Some(0), _) if args[0] == "apply" => {
                let st = std::fs::read_to_string(state.join("apply.json")).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&st).unwrap_or_default();
                format!(
                    "exit 0, {} errors",
                    v["errors"].as_array().map_or(0, Vec::len)
                )
            }
            (Some(c), Some(line)) => {
                let line = line.replace(&format!("{}/", t.display()), "");
                format!("exit {c}: `{}`", line.chars().take(140).collect::<String>())
            }
            (Some(c), None) => format!("exit {c}"),
            (None, _) => format!("signal {:?}", run.signal),
        };
        println!(
            "| {} | {} | {} | {} MiB | {} MiB | {} ms |",
            row.reader,
            row.case,
            outcome.replace('|', "\\|"),
            (run.peak_kib + 1023) / 1024,
            row.bound_kib / 1024,
            run.took.as_millis()
        );
        if run.signal.is_some() || !matches!(run.code, Some(0 | 1)) {
            failures.push(format!("{}: ended by {run:?}", row.case));
        }
        if run.peak_kib > row.bound_kib {
            failures.push(format!(
                "{}: peak RSS {} KiB, over {} KiB",
                row.case, run.peak_kib, row.bound_kib
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
