//! SELinux labels (issue 17): preroot's lookup against libselinux itself, on Debian's
//! refpolicy (a snapshot in tests/data/selinux/debian) and on a hand-written edge-case policy
//! (tests/data/selinux/edge); and the `security.selinux` attribute on ext4 and xfs images
//! made here and mounted on loop devices. tests/data/selinux/README.md says what each file
//! is and what installing the packages does to a machine.
//!
//! The comparisons with libselinux need `/usr/bin/python3` with `python3-selinux`
//! (`selabel.py`); without it they print `SKIP` (or fail under `PREROOT_REQUIRE_ALL=1`). The
//! snapshot's expected labels (`expected.tsv`, written by libselinux) are checked always.
mod common;

use preroot::render::{self, RenderedFile};
use preroot::selinux::contexts::FileKind;
use preroot::selinux::{Labeler, Verdict};
use preroot::sys::xattr;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/selinux")
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Directory => "dir",
        FileKind::Fifo => "fifo",
        FileKind::Symlink => "link",
        _ => "file",
    }
}

fn kind_of(name: &str) -> FileKind {
    match name {
        "dir" => FileKind::Directory,
        "fifo" => FileKind::Fifo,
        "link" => FileKind::Symlink,
        "file" => FileKind::Regular,
        other => panic!("kind {other}"),
    }
}

/// Every file each renderer writes for every network-config fixture, plus the name pins.
fn rendered_paths() -> BTreeSet<String> {
    let dir = common::fixtures().join("netconfig");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let input = entry.unwrap().path().join("input/network-config");
        let Ok(text) = std::fs::read_to_string(&input) else {
            continue;
        };
        let Ok(parsed) = preroot::providers::netconfig::parse(&text) else {
            continue;
        };
        let mut ctx = preroot::context::Context::new(
            None,
            preroot::context::Source {
                kind: preroot::context::SourceKind::NocloudSeed,
                medium: preroot::context::Access::Directory,
                location: "fixture".into(),
                partition_of: None,
            },
        );
        ctx.network = parsed.network;
        ctx.match_nics(false);
        for format in ["networkd", "nm", "ifcfg", "eni"] {
            let files: Vec<RenderedFile> = render::by_name(format)
                .unwrap()
                .render(&ctx)
                .unwrap_or_default();
            out.extend(files.into_iter().map(|f| f.path));
        }
        if let Ok(pins) = render::name_pins(&ctx) {
            out.extend(pins.into_iter().map(|f| f.path));
        }
    }
    assert!(out.len() > 20, "the fixtures render: {out:?}");
    out
}

/// Every path preroot creates (root-relative, as `output::RootDir` names it) with its type:
/// the renderers' files, what the sysroot phase and `apply` write, and every directory on the
/// way (the writer may create any of them).
fn preroot_paths() -> Vec<(FileKind, String)> {
    use preroot::{apply, cloudinit, sysroot};
    let mut files = rendered_paths();
    let mut add = |p: String| {
        files.insert(p);
    };
    // sysroot phase (docs/sysroot.md)
    for p in ["etc/hostname", "etc/hosts"] {
        add(p.into());
    }
    for n in ["manifest.json", "instance-id"] {
        add(format!("{}/{n}", sysroot::STATE_DIR));
    }
    add(format!(
        "etc/sysconfig/network-scripts/ifcfg-eth0{}",
        sysroot::ASIDE
    ));
    // the cloud-init hand-off (both phases)
    for n in ["meta-data", "user-data", "vendor-data", "network-config"] {
        add(format!("{}/{n}", cloudinit::SEED_DIR));
    }
    add(cloudinit::DROPIN.into());
    // apply (docs/apply.md)
    add(preroot::conf::CONF.into());
    add(apply::CURRENT.into());
    let inst = format!("{}/i-0123456789abcdef0", apply::INSTANCES);
    for n in [
        "status.json",
        "done",
        "sem/users",
        "sem/ssh-host-keys",
        "scripts/part-001",
        "boot/part-001",
    ] {
        add(format!("{inst}/{n}"));
    }
    add(apply::USER_DATA_LOG.into());
    add(apply::HEAT_LOG.into());
    for n in [
        "cfn-userdata",
        "cfn-init-data",
        "cfn-metadata-server",
        "cfn-boto-cfg",
        "provision-finished",
    ] {
        add(format!("{}/{n}", apply::HEAT_DIR));
    }
    // apply's sudoers file (a private constant in apply.rs)
    add("etc/sudoers.d/90-preroot-users".into());
    // authorized_keys: root, a user under /home, the same user on an ostree system
    // (/home -> var/home: written at the link's target), and ostree's /var/roothome.
    for home in ["root", "home/alice", "var/home/alice", "var/roothome"] {
        add(format!("{home}/.ssh/authorized_keys"));
    }
    // What the programs apply runs make or replace, relabelled after them: ssh-keygen -A's
    // host keys, useradd's and chpasswd's account files, a home made from /etc/skel.
    for t in ["rsa", "ecdsa", "ed25519"] {
        add(format!("etc/ssh/ssh_host_{t}_key"));
        add(format!("etc/ssh/ssh_host_{t}_key.pub"));
    }
    for f in ["passwd", "shadow", "group", "gshadow", "subuid", "subgid"] {
        add(format!("etc/{f}"));
    }
    for home in ["home/alice", "var/home/alice"] {
        for f in [".profile", ".bashrc", ".bash_logout"] {
            add(format!("{home}/{f}"));
        }
    }
    add(format!("{inst}/ssh-host-key-fingerprints"));
    // write_files targets are the user's choice; two typical ones.
    add("etc/motd".into());
    add("usr/local/bin/setup.sh".into());

    let mut dirs = BTreeSet::new();
    for f in &files {
        let mut p = f.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_string());
            p = parent;
        }
    }
    let mut out: Vec<(FileKind, String)> =
        dirs.into_iter().map(|d| (FileKind::Directory, d)).collect();
    out.extend(files.into_iter().map(|f| (FileKind::Regular, f)));
    out
}

/// `/usr/bin/python3` can `import selinux`.
fn has_python_selinux() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import selinux"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// libselinux's labels for `paths` (absolute), through selabel.py; `None` for no label.
fn libselinux(file_contexts: &Path, paths: &[(FileKind, String)]) -> Vec<Option<String>> {
    let mut child = Command::new("/usr/bin/python3")
        .arg(data().join("selabel.py"))
        .arg(file_contexts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for (kind, path) in paths {
        // selabel.py reads one path a line: escape `\` and newlines.
        let escaped = path.replace('\\', "\\\\").replace('\n', "\\n");
        input.push_str(&format!("{}\t{escaped}\n", kind_name(*kind)));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "selabel.py failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let labels: Vec<Option<String>> = text
        .lines()
        .map(|l| {
            let label = l.rsplit('\t').next().unwrap();
            (label != "<<none>>").then(|| label.to_string())
        })
        .collect();
    assert_eq!(labels.len(), paths.len(), "one answer per path");
    labels
}

fn ours(labeler: &Labeler, paths: &[(FileKind, String)]) -> Vec<Option<String>> {
    paths
        .iter()
        .map(|(kind, path)| {
            labeler
                .label_for(path, *kind)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .map(str::to_string)
        })
        .collect()
}

/// Both answers side by side; panics listing every difference.
fn assert_same(
    what: &str,
    paths: &[(FileKind, String)],
    ours: &[Option<String>],
    theirs: &[Option<String>],
) {
    let diffs: Vec<String> = paths
        .iter()
        .zip(ours.iter().zip(theirs))
        .filter(|(_, (a, b))| a != b)
        .map(|((k, p), (a, b))| format!("  {} {p}: preroot {a:?}, libselinux {b:?}", kind_name(*k)))
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} differ:\n{}",
        diffs.len(),
        paths.len(),
        diffs.join("\n")
    );
    eprintln!("{what}: {} paths, {} equal", paths.len(), paths.len());
}

fn debian() -> Labeler {
    Labeler::open(&data().join("debian"))
        .unwrap()
        .expect("SELinux on in the snapshot tree")
}

fn debian_file_contexts() -> PathBuf {
    data().join("debian/etc/selinux/default/contexts/files/file_contexts")
}

/// (kind, absolute path, label) rows of expected.tsv.
fn expected() -> Vec<(FileKind, String, Option<String>)> {
    std::fs::read_to_string(data().join("debian/expected.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let (k, p, label) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (
                kind_of(k),
                p.to_string(),
                (label != "<<none>>").then(|| label.to_string()),
            )
        })
        .collect()
}

fn absolute(paths: &[(FileKind, String)]) -> Vec<(FileKind, String)> {
    paths.iter().map(|(k, p)| (*k, format!("/{p}"))).collect()
}

#[test]
fn debian_snapshot_gives_libselinux_labels_for_every_path_preroot_writes() {
    let paths = absolute(&preroot_paths());
    let want = expected();
    let listed: Vec<(FileKind, String)> = want.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    assert_eq!(
        listed, paths,
        "expected.tsv lists exactly the paths preroot writes; regenerate it (tests/data/selinux/README.md)"
    );
    let theirs: Vec<Option<String>> = want.into_iter().map(|(_, _, l)| l).collect();
    assert_same(
        "Debian refpolicy snapshot vs expected.tsv",
        &paths,
        &ours(&debian(), &paths),
        &theirs,
    );
}

#[test]
fn debian_snapshot_matches_libselinux_live() {
    if !has_python_selinux() {
        common::missing(
            "debian_snapshot_matches_libselinux_live",
            "/usr/bin/python3 with python3-selinux",
        );
        return;
    }
    let paths = absolute(&preroot_paths());
    let theirs = libselinux(&debian_file_contexts(), &paths);
    assert_same(
        "Debian refpolicy snapshot, live libselinux",
        &paths,
        &ours(&debian(), &paths),
        &theirs,
    );
    // The machine's own policy, when the package is installed (it may be a newer version).
    let installed = Path::new("/etc/selinux/default/contexts/files/file_contexts");
    if installed.exists() {
        let labeler = Labeler::open(Path::new("/")).ok().flatten();
        if let Some(labeler) = labeler.filter(|l| l.policy_type() == "default") {
            let theirs = libselinux(installed, &paths);
            assert_same(
                "installed selinux-policy-default, live libselinux",
                &paths,
                &ours(&labeler, &paths),
                &theirs,
            );
        }
    }
}

/// (case, kind, path, expected type; `None`: no label)
const EDGE: &[(&str, &str, &str, Option<&str>)] = &[
    ("fallback regex", "file", "/srv/x", Some("default_t")),
    (
        "exact entry after a regex entry",
        "file",
        "/etc/hostname",
        Some("local_hostname_t"),
    ),
    (
        "a later regex does not beat an exact entry",
        "file",
        "/etc/hosts",
        Some("later_regex_t"),
    ),
    (
        "exact entry needs its file type",
        "dir",
        "/etc/hostname",
        Some("etc_t"),
    ),
    (
        "escaped dot stays exact",
        "file",
        "/etc/hosts.allow",
        Some("escaped_exact_t"),
    ),
    (
        "same exact path twice: the later",
        "file",
        "/etc/issue",
        Some("second_issue_t"),
    ),
    ("file type -d", "dir", "/etc/preroot", Some("type_dir_t")),
    (
        "file type --",
        "file",
        "/etc/preroot/manifest.json",
        Some("type_file_t"),
    ),
    (
        "file type -p",
        "fifo",
        "/etc/preroot/fifo",
        Some("type_fifo_t"),
    ),
    (
        "file type -l",
        "link",
        "/etc/preroot/link",
        Some("type_link_t"),
    ),
    (
        "no -l entry for a file of that name",
        "file",
        "/etc/preroot/link",
        Some("type_file_t"),
    ),
    (
        "<<none>>",
        "file",
        "/var/lib/preroot/instances/i-1/done",
        None,
    ),
    (
        "<<none>> does not reach the parent",
        "dir",
        "/var/lib/preroot/instances",
        Some("var_t"),
    ),
    (
        ".local exact overrides the base's exact",
        "file",
        "/etc/hostname",
        Some("local_hostname_t"),
    ),
    (
        ".local regex overrides the base's regex",
        "file",
        "/opt/app/x",
        Some("local_opt_t"),
    ),
    (
        ".homedirs",
        "file",
        "/home/alice/.ssh/authorized_keys",
        Some("ssh_home_t"),
    ),
    (
        ".homedirs home dir",
        "dir",
        "/home/alice",
        Some("user_home_dir_t"),
    ),
    (
        ".subs: /var/home is /home",
        "dir",
        "/var/home/alice/.ssh",
        Some("ssh_home_t"),
    ),
    (
        ".subs_dist: /var/roothome is /root",
        "file",
        "/var/roothome/.ssh/authorized_keys",
        Some("ssh_home_t"),
    ),
    (
        ".subs wins over .subs_dist for /lib",
        "file",
        "/lib/x",
        Some("local_opt_t"),
    ),
    (
        ".subs, then .subs_dist on the result",
        "file",
        "/data/root/.ssh/authorized_keys",
        Some("ssh_home_t"),
    ),
    (
        "a substitution ends at a /",
        "file",
        "/library/x",
        Some("default_t"),
    ),
    (
        "top-level |: ^/srv/a...",
        "file",
        "/srv/a/anything",
        Some("alternation_t"),
    ),
    (
        "top-level |: .../srv/b$ under the stem /srv",
        "file",
        "/srv/x/srv/b",
        Some("alternation_t"),
    ),
    (
        "top-level |: the stem /srv still applies",
        "file",
        "/x/srv/b",
        Some("default_t"),
    ),
    (
        "counted repetition",
        "file",
        "/var/cache/xxx",
        Some("counted_t"),
    ),
    (
        "counted repetition, too many",
        "file",
        "/var/cache/xxxx",
        Some("var_t"),
    ),
    ("lazy quantifier", "file", "/var/spool/q/1", Some("lazy_t")),
    (
        "a brace that is a literal",
        "file",
        "/run/user/%{USERID}",
        Some("brace_literal_t"),
    ),
    (
        "duplicate slashes and a trailing slash",
        "dir",
        "//root//.ssh/",
        Some("ssh_home_t"),
    ),
    (
        "a newline before the end ($)",
        "file",
        "/etc/hostname\n",
        Some("local_hostname_t"),
    ),
];

fn edge_paths() -> Vec<(FileKind, String)> {
    EDGE.iter()
        .map(|(_, k, p, _)| (kind_of(k), p.to_string()))
        .collect()
}

#[test]
fn edge_policy_cases() {
    let labeler = Labeler::open(&data().join("edge")).unwrap().unwrap();
    assert_eq!(labeler.policy_type(), "edge");
    for (name, kind, path, want) in EDGE {
        let got = labeler.label_for(path, kind_of(kind)).unwrap();
        let got_type = got.map(|l| l.split(':').nth(2).unwrap());
        assert_eq!(got_type, *want, "case {name}: {path:?}");
    }
}

#[test]
fn edge_policy_matches_libselinux_live() {
    if !has_python_selinux() {
        common::missing(
            "edge_policy_matches_libselinux_live",
            "/usr/bin/python3 with python3-selinux",
        );
        return;
    }
    let labeler = Labeler::open(&data().join("edge")).unwrap().unwrap();
    let paths = edge_paths();
    let fc = data().join("edge/etc/selinux/edge/contexts/files/file_contexts");
    assert_same(
        "edge policy, live libselinux",
        &paths,
        &ours(&labeler, &paths),
        &libselinux(&fc, &paths),
    );
}

#[test]
fn disabled_or_absent_config_means_no_labels() {
    let cases: &[(&str, PathBuf)] = &[
        ("SELINUX=disabled", data().join("disabled")),
        (
            "no etc/selinux/config",
            data().join("edge/etc/selinux/edge"),
        ),
    ];
    for (name, root) in cases {
        assert!(Labeler::open(root).unwrap().is_none(), "case {name}");
    }
}

/// Lookup cost on the full Debian policy (not a timed assertion: figures for the report).
#[test]
fn bench_debian_lookups() {
    let t = std::time::Instant::now();
    let labeler = debian();
    let open = t.elapsed();
    let paths = absolute(&preroot_paths());
    let rounds = 20;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for (kind, path) in &paths {
            std::hint::black_box(labeler.label_for(path, *kind).unwrap());
        }
    }
    let per = t.elapsed() / u32::try_from(rounds * paths.len()).unwrap();
    let fuel = paths
        .iter()
        .map(|(k, p)| labeler.contexts().fuel_used(p.as_bytes(), Some(*k)))
        .max()
        .unwrap();
    eprintln!(
        "bench: Debian refpolicy: {} specs opened in {open:?}; {} paths, {per:?} per lookup, at most {fuel} matcher steps",
        labeler.contexts().specs().len(),
        paths.len()
    );
    assert!(
        fuel < preroot::selinux::contexts::LOOKUP_FUEL / 100,
        "fuel budget has a wide margin"
    );
}

/// Files of this machine (the first 20,000 found under a few top-level directories),
/// labelled by preroot and by libselinux with the snapshot policy: a wider net than preroot's
/// own paths. Run by hand: `cargo test --test selinux whole_machine -- --ignored --nocapture`.
/// All of them (530,298 on the machine this was written on, 0 differences) take minutes in a
/// debug build; tools/selinux-probe's `selown` does that run in release.
#[test]
#[ignore]
fn whole_machine_paths_match_libselinux() {
    if !has_python_selinux() {
        common::missing(
            "whole_machine_paths_match_libselinux",
            "/usr/bin/python3 with python3-selinux",
        );
        return;
    }
    use std::os::unix::fs::FileTypeExt;
    let mut paths = Vec::new();
    let mut todo: Vec<PathBuf> = [
        "/etc", "/usr", "/var", "/root", "/home", "/opt", "/srv", "/boot",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let kind = if t.is_dir() {
                todo.push(e.path());
                FileKind::Directory
            } else if t.is_symlink() {
                FileKind::Symlink
            } else if t.is_fifo() {
                FileKind::Fifo
            } else if t.is_char_device() {
                FileKind::CharDevice
            } else if t.is_block_device() {
                FileKind::BlockDevice
            } else if t.is_socket() {
                FileKind::Socket
            } else {
                FileKind::Regular
            };
            let Some(p) = e.path().to_str().map(str::to_string) else {
                continue;
            };
            if !p.contains('\n') && !p.contains('\t') {
                paths.push((kind, p));
            }
        }
        if paths.len() >= 20_000 {
            break;
        }
    }
    // selabel.py knows file, dir, fifo and link; devices and sockets are left out.
    paths.retain(|(k, _)| {
        matches!(
            k,
            FileKind::Regular | FileKind::Directory | FileKind::Fifo | FileKind::Symlink
        )
    });
    let labeler = debian();
    let t = std::time::Instant::now();
    let mine = ours(&labeler, &paths);
    eprintln!("preroot: {} lookups in {:?}", paths.len(), t.elapsed());
    let t = std::time::Instant::now();
    let theirs = libselinux(&debian_file_contexts(), &paths);
    eprintln!("libselinux (python, incl. start): {:?}", t.elapsed());
    assert_same(
        "this machine's files, Debian refpolicy snapshot",
        &paths,
        &mine,
        &theirs,
    );
}

/// A filesystem image on a loop device, mounted on a temporary directory; unmounted and
/// detached on drop (mount dropped first).
struct Mounted {
    dir: common::TempDir,
    _loop: common::LoopDev,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn mount_image(work: &Path, fs: &str) -> Mounted {
    // xfsprogs 6 refuses filesystems under 300 MiB; the image is sparse.
    let size: u64 = if fs == "xfs" { 320 << 20 } else { 64 << 20 };
    let image = work.join(format!("{fs}.img"));
    std::fs::File::create(&image)
        .unwrap()
        .set_len(size)
        .unwrap();
    let lo = common::LoopDev::attach(&image, None);
    let mkfs = Command::new(format!("mkfs.{fs}"))
        .args(if fs == "xfs" {
            vec!["-q", "-f"]
        } else {
            vec!["-q", "-F"]
        })
        .arg(&lo.dev)
        .output()
        .unwrap();
    assert!(
        mkfs.status.success(),
        "mkfs.{fs}: {}",
        String::from_utf8_lossy(&mkfs.stderr)
    );
    let dir = common::TempDir::new(&format!("selinux-{fs}-mnt"));
    let st = Command::new("mount")
        .arg(&lo.dev)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount {fs}");
    Mounted { dir, _loop: lo }
}

/// Writes `paths` under `root` as the wired writer will: each directory labelled when made
/// (`lsetxattr`), each file as a temporary file labelled on its fd (`fsetxattr`) before data
/// and rename. `labeler: None` is labelling turned off.
fn write_tree(root: &Path, paths: &[(FileKind, String)], labeler: Option<&Labeler>) {
    use std::os::unix::fs::OpenOptionsExt;
    for (kind, rel) in paths {
        let label = labeler.and_then(|l| l.label_for_rel(rel, *kind).unwrap());
        let target = root.join(rel);
        match kind {
            FileKind::Directory => {
                std::fs::create_dir(&target).unwrap();
                if let Some(label) = label {
                    xattr::set_nofollow(&target, label).unwrap();
                }
            }
            _ => {
                let tmp = target.with_file_name(format!(
                    ".{}.tmp",
                    target.file_name().unwrap().to_str().unwrap()
                ));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&tmp)
                    .unwrap();
                if let Some(label) = label {
                    xattr::set_fd(f.as_fd(), label).unwrap();
                }
                f.write_all(b"preroot\n").unwrap();
                f.sync_all().unwrap();
                std::fs::rename(&tmp, &target).unwrap();
            }
        }
    }
}

/// `getfattr -n security.selinux --only-values` of each path: `None` where it has none.
fn getfattr(root: &Path, paths: &[(FileKind, String)]) -> Vec<Option<String>> {
    paths
        .iter()
        .map(|(_, rel)| {
            let out = Command::new("getfattr")
                .args(["-h", "--only-values", "-n", "security.selinux"])
                .arg(root.join(rel))
                .output()
                .unwrap();
            out.status.success().then(|| {
                String::from_utf8_lossy(&out.stdout)
                    .trim_end_matches('\0')
                    .to_string()
            })
        })
        .collect()
}

#[test]
fn labels_on_ext4_and_xfs_read_back_with_getfattr() {
    require!("labels_on_ext4_and_xfs_read_back_with_getfattr"; root, loop, "mkfs.ext4", "mkfs.xfs", "getfattr", "mount");
    let labeler = debian();
    let paths = preroot_paths();
    let want: Vec<Option<String>> = ours(&labeler, &absolute(&paths));
    assert!(
        want.iter().all(Option::is_some),
        "every path has a label in refpolicy"
    );
    let work = common::TempDir::new("selinux-images");
    for fs in ["ext4", "xfs"] {
        let m = mount_image(work.path(), fs);
        let (on, off) = (m.dir.path().join("on"), m.dir.path().join("off"));
        std::fs::create_dir(&on).unwrap();
        std::fs::create_dir(&off).unwrap();
        write_tree(&on, &paths, Some(&labeler));
        // Labelling turned off: what Labeler::open gives for SELINUX=disabled.
        let disabled = Labeler::open(&data().join("disabled")).unwrap();
        assert!(disabled.is_none());
        write_tree(&off, &paths, disabled.as_ref());

        let got_on = getfattr(&on, &paths);
        assert_same(
            &format!("{fs}: labels read back with getfattr"),
            &paths,
            &got_on,
            &want,
        );
        // The same through sys::xattr (lgetxattr), and the check `preroot show` will run.
        for ((kind, rel), want) in paths.iter().zip(&want) {
            let have = xattr::get_nofollow(&on.join(rel)).unwrap();
            assert_eq!(&have, want, "{fs}: {rel}");
            assert_eq!(
                labeler.verify(&format!("/{rel}"), *kind, have.as_deref()),
                Verdict::Matches,
                "{fs}: {rel}"
            );
        }

        let got_off = getfattr(&off, &paths);
        assert!(
            got_off.iter().all(Option::is_none),
            "{fs}: labelling off writes no attribute"
        );
        let missing = paths
            .iter()
            .zip(&got_off)
            .filter(|((k, rel), have)| {
                matches!(
                    labeler.verify(&format!("/{rel}"), *k, have.as_deref()),
                    Verdict::Missing { .. }
                )
            })
            .count();
        assert_eq!(
            missing,
            paths.len(),
            "{fs}: the comparison fails for every unlabelled path"
        );
        eprintln!(
            "{fs}: {} paths labelled and read back; the unlabelled tree fails all {missing}",
            paths.len()
        );
    }
}

/// Prints `PATH<TAB>kind<TAB>/path` for every path preroot writes: the input of
/// expected.tsv (tests/data/selinux/README.md has the command).
#[test]
#[ignore]
fn list_preroot_paths() {
    for (kind, path) in absolute(&preroot_paths()) {
        println!("PATH\t{}\t{path}", kind_name(kind));
    }
}

// ---------------------------------------------------------------------------------------
// `render --root` and `apply --root` on root trees on ext4 and xfs (loop devices): the labels
// preroot sets, read back with getfattr.

fn preroot_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_cli(args: &[&str]) -> String {
    let out = preroot_cli(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "preroot {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn put(path: &Path, data: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A system root for `render --root` and `apply --root`: busybox as /bin/sh, networkd
/// enabled, the Debian refpolicy snapshot with `config` as its `etc/selinux/config`, and
/// stand-ins for the programs apply runs that act on the files as the real ones do:
/// `useradd -m` makes the home from /etc/skel, `chpasswd` replaces /etc/shadow by a rename
/// (a new inode, no label), `ssh-keygen -A` makes host keys. Nothing in it is labelled.
fn selinux_root(root: &Path, config: &str) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc/ssh", "root", "home", "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let st = Command::new("chroot")
        .arg(root)
        .args(["/bin/busybox", "--install", "-s"])
        .status()
        .unwrap();
    assert!(st.success(), "busybox --install");
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/systemd-networkd.service",
        wants.join("systemd-networkd.service"),
    )
    .unwrap();
    put(&root.join("etc/hosts"), "127.0.0.1 localhost\n", 0o644);
    put(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    put(&root.join("etc/group"), "root:x:0:\n", 0o644);
    put(
        &root.join("etc/shadow"),
        "root:*:19000:0:99999:7:::\n",
        0o640,
    );
    put(&root.join("etc/skel/.profile"), "# skel\n", 0o644);
    put(
        &root.join("usr/sbin/useradd"),
        "#!/bin/sh\n# useradd -m -s SHELL [-G GROUPS] NAME\n\
         while [ $# -gt 1 ]; do shift; done\n\
         id=$((999 + $(wc -l < /etc/passwd)))\n\
         echo \"$1:x:$id:$id::/home/$1:/bin/sh\" >> /etc/passwd\n\
         echo \"$1:x:$id:\" >> /etc/group\n\
         echo \"$1:!:19000:0:99999:7:::\" >> /etc/shadow\n\
         mkdir -p /home/$1 && cp /etc/skel/.profile /home/$1/ && chown -R $id:$id /home/$1\n",
        0o755,
    );
    put(
        &root.join("usr/sbin/chpasswd"),
        "#!/bin/sh\n[ \"$1\" = -e ] || exit 2\n\
         while IFS=: read -r user hash; do\n\
         sed \"s|^$user:[^:]*:|$user:$hash:|\" /etc/shadow > /etc/shadow+ && mv /etc/shadow+ /etc/shadow\n\
         done\n",
        0o755,
    );
    put(
        &root.join("usr/bin/ssh-keygen"),
        "#!/bin/sh\ncase \"$1\" in\n-A) for t in rsa ed25519; do echo \"fake $t\" > /etc/ssh/ssh_host_${t}_key; \
         echo \"ssh-$t FAKE\" > /etc/ssh/ssh_host_${t}_key.pub; done;;\n\
         -l) echo \"256 SHA256:fake $3\";;\nesac\n",
        0o755,
    );
    let files = "etc/selinux/default/contexts/files";
    std::fs::create_dir_all(root.join(files)).unwrap();
    for f in [
        "file_contexts",
        "file_contexts.homedirs",
        "file_contexts.subs_dist",
    ] {
        std::fs::copy(
            data().join("debian").join(files).join(f),
            root.join(files).join(f),
        )
        .unwrap();
    }
    put(&root.join("etc/selinux/config"), config, 0o644);
}

/// Every path under `root` (relative, sorted) with its inode.
fn inodes(root: &Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            }
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            out.insert(rel, meta.ino());
        }
    }
    out
}

/// `getfattr -R -h -d -m security.selinux` over `root`: every path that has a label (links
/// not followed), relative, with the label.
fn getfattr_tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("getfattr")
        .args([
            "-R",
            "-h",
            "-d",
            "--absolute-names",
            "-m",
            "^security\\.selinux$",
        ])
        .arg(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = std::collections::BTreeMap::new();
    let mut file: Option<String> = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("# file: ") {
            let rel = Path::new(p).strip_prefix(root).unwrap();
            file = Some(rel.to_str().unwrap().to_string());
        } else if let Some(v) = line.strip_prefix("security.selinux=") {
            let v = v.trim_matches('"').trim_end_matches("\\000").to_string();
            map.insert(file.clone().unwrap(), v);
        }
    }
    map
}

/// What preroot does to one root: `render --root` with the context, then `apply --root`
/// (extra arguments to both: `--no-labels`). Returns the paths it made, replaced or
/// relabelled (every path new or with a new inode, and the account files apply relabels
/// after useradd/chpasswd) and the tree's labels afterwards.
fn configure_tree(
    root: &Path,
    state: &Path,
    ctx: &str,
    extra: &[&str],
) -> (
    Vec<(FileKind, String)>,
    std::collections::BTreeMap<String, String>,
) {
    let before = inodes(root);
    let r = root.to_str().unwrap();
    let mut args = vec!["render", "--context", ctx, "--root", r];
    args.extend_from_slice(extra);
    ok_cli(&args);
    let mut args = vec!["apply", "--root", r, "--state-dir", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok_cli(&args);
    let after = inodes(root);
    let relabelled = ["etc/passwd", "etc/group", "etc/shadow"];
    // /tmp/ran is the user's runcmd's: what scripts make is theirs (docs/selinux.md).
    let touched: Vec<(FileKind, String)> = after
        .iter()
        .filter(|(p, ino)| before.get(*p) != Some(ino) || relabelled.contains(&p.as_str()))
        .filter(|(p, _)| p.as_str() != "tmp/ran")
        .filter_map(|(p, _)| {
            let meta = std::fs::symlink_metadata(root.join(p)).unwrap();
            let kind = if meta.is_dir() {
                FileKind::Directory
            } else if meta.is_file() {
                FileKind::Regular
            } else {
                return None; // busybox's links are the test's, not preroot's
            };
            Some((kind, p.clone()))
        })
        .collect();
    (touched, getfattr_tree(root))
}

/// `render --root` and `apply --root` on ext4 and xfs: every file and directory preroot
/// made, replaced or had made (a home from /etc/skel, host keys, /etc/shadow replaced by
/// chpasswd) carries, read back with getfattr, the label libselinux's rules give it in the
/// tree's own policy, and nothing else in the tree got one; `preroot show --root` agrees.
/// A tree with `SELINUX=disabled` gets no attribute at all; the same tree as the first with
/// `--no-labels` gets none either, so the comparison fails for every path, as `show` says:
/// the check can fail.
#[test]
fn render_and_apply_label_root_trees_on_ext4_and_xfs() {
    require!("render_and_apply_label_root_trees_on_ext4_and_xfs"; root, loop, "mkfs.ext4", "mkfs.xfs", "getfattr", "mount", "busybox", "chroot");
    let work = common::TempDir::new("selinux-trees");
    // The sample config drive, with user data that makes a user and writes a file.
    let drive = work.path().join("drive");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample-configdrive"))
        .arg(&drive)
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::write(
        drive.join("openstack/latest/user_data"),
        "#cloud-config\nusers:\n  - default\n  - name: alice\n    ssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice\"]\n\
         write_files:\n  - path: /etc/motd\n    content: \"labelled\\n\"\nruncmd:\n  - [touch, /tmp/ran]\n",
    )
    .unwrap();
    let state = work.path().join("state");
    let ctx_json = ok_cli(&[
        "context",
        "--from",
        &format!("configdrive:{}", drive.display()),
        "--root",
        "tests/data/sample-machine",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    std::fs::write(state.join("context.json"), &ctx_json).unwrap();
    let ctx = state.join("context.json");
    let ctx = ctx.to_str().unwrap();
    let labeler = debian();
    let enforcing = "SELINUX=enforcing\nSELINUXTYPE=default\n";
    for fs in ["ext4", "xfs"] {
        let m = mount_image(work.path(), fs);
        let trees = |name: &str, config: &str| {
            let root = m.dir.path().join(name);
            selinux_root(&root, config);
            root
        };

        // Labels on.
        let on = trees("on", enforcing);
        let (touched, labels) = configure_tree(&on, &state, ctx, &[]);
        for want in [
            "etc/hostname",
            "etc/preroot/manifest.json",
            "etc/systemd/network",
            "home/cloud-user/.ssh/authorized_keys",
            "home/alice/.profile",
            "etc/ssh/ssh_host_rsa_key",
            "etc/sudoers.d/90-preroot-users",
            "etc/motd",
            "var/lib/preroot/instance-id",
        ] {
            assert!(
                touched.iter().any(|(_, p)| p == want),
                "{fs}: preroot wrote {want}: {touched:?}"
            );
        }
        let want: Vec<Option<String>> = ours(&labeler, &absolute(&touched));
        let got: Vec<Option<String>> = touched
            .iter()
            .map(|(_, p)| labels.get(p).cloned())
            .collect();
        assert_same(
            &format!("{fs}: render + apply --root, getfattr vs the policy"),
            &touched,
            &got,
            &want,
        );
        if has_python_selinux() {
            assert_same(
                &format!("{fs}: the same paths, live libselinux"),
                &touched,
                &want,
                &libselinux(&debian_file_contexts(), &absolute(&touched)),
            );
        }
        let stray: Vec<&String> = labels
            .keys()
            .filter(|p| !touched.iter().any(|(_, t)| t == *p))
            .collect();
        assert!(
            stray.is_empty(),
            "{fs}: labels on what preroot did not make: {stray:?}"
        );
        let key = labels.get("etc/ssh/ssh_host_rsa_key").unwrap();
        assert!(
            key.contains(":sshd_key_t:"),
            "{fs}: ssh-keygen's key relabelled: {key}"
        );
        let show = ok_cli(&[
            "show",
            "--state-dir",
            state.to_str().unwrap(),
            "--root",
            on.to_str().unwrap(),
        ]);
        assert!(
            show.contains("selinux: all ") && !show.contains("no label"),
            "{fs}: show:\n{show}"
        );

        // SELINUX=disabled: no attribute anywhere.
        let disabled = trees("disabled", "SELINUX=disabled\nSELINUXTYPE=default\n");
        let (touched_d, labels_d) = configure_tree(&disabled, &state, ctx, &[]);
        assert!(touched_d.len() >= touched.len(), "{fs}: the same work");
        assert!(labels_d.is_empty(), "{fs}: SELINUX=disabled: {labels_d:?}");

        // Labels turned off on a tree like the first: the comparison fails for every path.
        let off = trees("off", enforcing);
        let (touched_o, labels_o) = configure_tree(&off, &state, ctx, &["--no-labels"]);
        assert!(labels_o.is_empty(), "{fs}: --no-labels: {labels_o:?}");
        let failing = touched_o
            .iter()
            .filter(|(k, p)| {
                !matches!(
                    labeler.verify(&format!("/{p}"), *k, labels_o.get(p).map(String::as_str)),
                    Verdict::Matches
                )
            })
            .count();
        assert_eq!(
            failing,
            touched_o.len(),
            "{fs}: every unlabelled path fails the check"
        );
        let show = ok_cli(&[
            "show",
            "--state-dir",
            state.to_str().unwrap(),
            "--root",
            off.to_str().unwrap(),
        ]);
        assert!(
            show.contains("no label; the policy gives") && show.contains("do not carry"),
            "{fs}: show on the unlabelled tree:\n{show}"
        );
        eprintln!(
            "{fs}: {} paths labelled as the policy says and read back; SELINUX=disabled: no attribute; --no-labels: all {failing} fail",
            touched.len()
        );
    }
}
