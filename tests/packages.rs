//! The packages of issue 18, assembled from the release binary `make static` already built
//! (`make rpm deb PACKAGE_FROM_BIN=1`: no second cargo build): each holds exactly the
//! expected files with the expected modes, at the directories Fedora's macros and this
//! machine's pkg-config give; the binary inside is the static one, byte for byte; rpmlint
//! and lintian pass (their remaining findings are explained in packaging/); the man pages
//! render without warnings (`groff -ww -z`, `man -l`); the bash completion completes a
//! command and an option's value (`complete -p`, `compgen`).
//!
//! The packages are built once per test process (`built()`), into `target/packages-test/`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every tool the packaging tests run (Makefile APT_PACKAGES installs them all).
macro_rules! require_packaging {
    ($test:expr) => {
        require!($test; "make", "git", "rpmbuild", "rpm", "rpm2cpio", "cpio", "rpmlint",
            "dpkg-buildpackage", "dpkg-deb", "dh", "lintian", "pkg-config", "groff", "man", "bash");
        if !static_binary().exists() {
            common::missing($test, "the release binary (make static)");
            return;
        }
    };
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The Makefile's STATIC.
fn static_binary() -> PathBuf {
    target_dir().join("x86_64-unknown-linux-musl/release/preroot")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

fn pkg_config(var: &str, pkg: &str) -> String {
    let dir = stdout(
        Command::new("pkg-config")
            .arg(format!("--variable={var}"))
            .arg(pkg),
    );
    let dir = dir.trim().to_string();
    assert!(dir.starts_with('/'), "pkg-config {var} {pkg}: {dir:?}");
    dir
}

struct Built {
    rpm: PathBuf,
    rpm_dracut: PathBuf,
    deb: PathBuf,
    deb_dracut: PathBuf,
    gendoc: PathBuf,
    seconds: f64,
}

/// `make man`, then `make rpm deb PACKAGE_FROM_BIN=1` into `target/packages-test/`, once.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let start = std::time::Instant::now();
        let pkg = target_dir().join("packages-test");
        let gendoc = target_dir().join("packages-test-gendoc");
        let _ = std::fs::remove_dir_all(&pkg);
        run(Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(repo())
            .arg("man")
            .arg(format!("GENDOC={}", gendoc.display())));
        run(Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(repo())
            .args(["rpm", "deb", "PACKAGE_FROM_BIN=1"])
            .arg(format!("PKG={}", pkg.display()))
            .arg(format!("GENDOC={}", gendoc.display())));
        let b = Built {
            rpm: pkg.join(format!("rpm/RPMS/x86_64/preroot-{VERSION}-1.x86_64.rpm")),
            rpm_dracut: pkg.join(format!(
                "rpm/RPMS/noarch/preroot-dracut-{VERSION}-1.noarch.rpm"
            )),
            deb: pkg.join(format!("deb/preroot_{VERSION}-1_amd64.deb")),
            deb_dracut: pkg.join(format!("deb/preroot-dracut_{VERSION}-1_all.deb")),
            gendoc,
            seconds: start.elapsed().as_secs_f64(),
        };
        eprintln!("packages: built in {:.1} s", b.seconds);
        b
    })
}

/// The dracut module's files, with their modes.
const MODULE: &[(&str, u32)] = &[
    ("module-setup.sh", 0o755),
    ("preroot-fetch.service", 0o644),
    ("preroot-grow.service", 0o644),
    ("preroot-pre-mount.sh", 0o755),
    ("preroot-pre-pivot.sh", 0o755),
    ("preroot-sysroot.service", 0o644),
];

/// `-rwxr-xr-x` for a regular file of mode `mode`.
fn mode_string(mode: u32) -> String {
    let mut s = String::from("-");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Regular files of a package listing as `(mode string, path)`: `rpm -qlpv` and
/// `dpkg-deb -c` both start lines with the mode and end them with the path (`./` stripped).
fn listed_files(listing: &str) -> BTreeSet<(String, String)> {
    listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_string();
            let path = l
                .split_whitespace()
                .last()?
                .trim_start_matches('.')
                .to_string();
            Some((mode, path))
        })
        .collect()
}

fn expect(files: &[(String, u32)]) -> BTreeSet<(String, String)> {
    files
        .iter()
        .map(|(p, m)| (mode_string(*m), p.clone()))
        .collect()
}

fn module_files(moddir: &str, confdir: &str) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = MODULE
        .iter()
        .map(|(f, m)| (format!("{moddir}/90preroot/{f}"), *m))
        .collect();
    v.push((format!("{confdir}/90-preroot.conf"), 0o644));
    v
}

/// `rpm -qlpv`: exactly the expected files, modes, and Fedora's directories (the values of
/// systemd-rpm-macros' `%{_unitdir}` and dracut's `%{dracutlibdir}`, which the spec also
/// defines as its fallbacks on Debian's rpm).
#[test]
fn rpm_contents_and_modes() {
    require_packaging!("rpm_contents_and_modes");
    let b = built();
    let docs = format!("/usr/share/doc/preroot-{VERSION}");
    let mut want: Vec<(String, u32)> = [
        ("/usr/bin/preroot", 0o755),
        ("/usr/lib/systemd/system/preroot-apply.service", 0o644),
        ("/usr/share/man/man8/preroot.8", 0o644),
        ("/usr/share/man/man5/preroot.conf.5", 0o644),
        ("/usr/share/man/man7/preroot-cmdline.7", 0o644),
        ("/usr/share/bash-completion/completions/preroot", 0o644),
        ("/usr/share/zsh/site-functions/_preroot", 0o644),
        ("/usr/share/fish/vendor_completions.d/preroot.fish", 0o644),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), *m))
    .collect();
    for d in [
        "README.md",
        "apply.md",
        "context.md",
        "grow.md",
        "sysroot.md",
    ] {
        want.push((format!("{docs}/{d}"), 0o644));
    }
    want.push((
        format!("/usr/share/licenses/preroot-{VERSION}/LICENSE"),
        0o644,
    ));
    let got = listed_files(&stdout(Command::new("rpm").arg("-qlpv").arg(&b.rpm)));
    // Man pages may be compressed by the builder's brp-compress (Fedora's is; Debian's is not).
    let got: BTreeSet<_> = got
        .into_iter()
        .map(|(m, p)| (m, p.trim_end_matches(".gz").to_string()))
        .collect();
    assert_eq!(got, expect(&want), "preroot RPM");

    let mut want = module_files("/usr/lib/dracut/modules.d", "/usr/lib/dracut/dracut.conf.d");
    want.push((
        format!("/usr/share/licenses/preroot-dracut-{VERSION}/LICENSE"),
        0o644,
    ));
    let got = listed_files(&stdout(Command::new("rpm").arg("-qlpv").arg(&b.rpm_dracut)));
    assert_eq!(got, expect(&want), "preroot-dracut RPM");

    let req = stdout(Command::new("rpm").arg("-qpR").arg(&b.rpm_dracut));
    assert!(
        req.contains("dracut"),
        "preroot-dracut requires dracut: {req}"
    );
    assert!(
        req.contains(&format!("preroot = {VERSION}-1")),
        "preroot-dracut requires preroot: {req}"
    );
    let scripts = stdout(Command::new("rpm").arg("-qp").arg("--scripts").arg(&b.rpm));
    assert!(
        scripts.contains("preset preroot-apply.service"),
        "systemd scriptlets: {scripts}"
    );

    // The binary inside is the static one, byte for byte.
    let x = common::TempDir::new("rpm-x");
    run(Command::new("sh")
        .current_dir(x.path())
        .arg("-c")
        .arg(format!(
            "rpm2cpio '{}' | cpio -idm --quiet",
            b.rpm.display()
        )));
    let inside = std::fs::read(x.path().join("usr/bin/preroot")).unwrap();
    assert!(
        inside == std::fs::read(static_binary()).unwrap(),
        "the RPM's /usr/bin/preroot differs from {}",
        static_binary().display()
    );
}

/// `dpkg-deb -c`: exactly the expected files and modes, at the directories this machine's
/// pkg-config gives for dracut and systemd; the dependencies that let a Debian user install
/// it beside initramfs-tools.
#[test]
fn deb_contents_and_modes() {
    require_packaging!("deb_contents_and_modes");
    let b = built();
    let unitdir = pkg_config("systemdsystemunitdir", "systemd");
    let moddir = pkg_config("dracutmodulesdir", "dracut");
    let confdir = pkg_config("dracutconfdir", "dracut");
    let doc = "/usr/share/doc/preroot";
    let mut want: Vec<(String, u32)> = vec![
        ("/usr/bin/preroot".into(), 0o755),
        (format!("{unitdir}/preroot-apply.service"), 0o644),
        ("/usr/share/man/man8/preroot.8.gz".into(), 0o644),
        ("/usr/share/man/man5/preroot.conf.5.gz".into(), 0o644),
        ("/usr/share/man/man7/preroot-cmdline.7.gz".into(), 0o644),
        (
            "/usr/share/bash-completion/completions/preroot".into(),
            0o644,
        ),
        ("/usr/share/zsh/vendor-completions/_preroot".into(), 0o644),
        (
            "/usr/share/fish/vendor_completions.d/preroot.fish".into(),
            0o644,
        ),
        ("/usr/share/lintian/overrides/preroot".into(), 0o644),
        (format!("{doc}/copyright"), 0o644),
        (format!("{doc}/changelog.Debian.gz"), 0o644),
    ];
    for d in [
        "README.md",
        "apply.md",
        "context.md",
        "grow.md",
        "sysroot.md",
    ] {
        want.push((format!("{doc}/{d}.gz"), 0o644));
    }
    let got = listed_files(&stdout(Command::new("dpkg-deb").arg("-c").arg(&b.deb)));
    assert_eq!(got, expect(&want), "preroot .deb");

    let doc = "/usr/share/doc/preroot-dracut";
    let mut want = module_files(&moddir, &confdir);
    want.push((format!("{doc}/copyright"), 0o644));
    want.push((format!("{doc}/changelog.Debian.gz"), 0o644));
    want.push(("/usr/share/lintian/overrides/preroot-dracut".into(), 0o644));
    let got = listed_files(&stdout(
        Command::new("dpkg-deb").arg("-c").arg(&b.deb_dracut),
    ));
    assert_eq!(got, expect(&want), "preroot-dracut .deb");

    let field = |deb: &Path, f: &str| stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg(f));
    let depends = field(&b.deb_dracut, "Depends");
    assert_eq!(
        depends.trim(),
        format!("preroot (= {VERSION}-1), dracut-core"),
        "preroot-dracut must not pull in dracut (it conflicts with initramfs-tools)"
    );
    let postinst = stdout(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&b.deb)
            .arg("postinst"),
    );
    assert!(
        postinst.contains("preroot-apply.service"),
        "postinst enables the unit: {postinst}"
    );

    let x = common::TempDir::new("deb-x");
    run(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(x.path()));
    let bin = x.path().join("usr/bin/preroot");
    assert!(
        std::fs::read(&bin).unwrap() == std::fs::read(static_binary()).unwrap(),
        "the .deb's /usr/bin/preroot differs from {}",
        static_binary().display()
    );
    let v = stdout(Command::new(&bin).arg("--version"));
    assert!(
        v.starts_with(&format!("preroot {VERSION}")),
        "--version: {v}"
    );
}

/// rpmlint (the spec and both RPMs) and lintian (both .debs): no error or warning beyond
/// those packaging/rpm/preroot.rpmlintrc and the lintian overrides explain.
#[test]
fn rpmlint_and_lintian_pass() {
    require_packaging!("rpmlint_and_lintian_pass");
    let b = built();
    let out = Command::new("rpmlint")
        .arg("-r")
        .arg(repo().join("packaging/rpm/preroot.rpmlintrc"))
        .arg(repo().join("packaging/rpm/preroot.spec"))
        .arg(&b.rpm)
        .arg(&b.rpm_dracut)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("0 errors, 0 warnings"),
        "rpmlint: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--info", "--display-info"])
        .arg(&b.deb)
        .arg(&b.deb_dracut)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<&str> = text.lines().filter(|l| l.get(1..3) == Some(": ")).collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "lintian: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The man pages: no groff warning (`groff -ww -z`), `man -l` renders the packaged ones, and
/// preroot(8) names every command and option of the declaration.
#[test]
fn man_pages_render_and_cover_the_declaration() {
    require_packaging!("man_pages_render_and_cover_the_declaration");
    let b = built();
    for page in ["preroot.8", "preroot.conf.5", "preroot-cmdline.7"] {
        let path = b.gendoc.join("man").join(page);
        let out = run(Command::new("groff")
            .args(["-ww", "-z", "-man", "-Tutf8"])
            .arg(&path));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().is_empty(), "groff -ww {page}: {err}");
    }
    let x = common::TempDir::new("man-x");
    run(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(x.path()));
    for page in [
        "man8/preroot.8.gz",
        "man5/preroot.conf.5.gz",
        "man7/preroot-cmdline.7.gz",
    ] {
        let out = run(Command::new("man")
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1")
            .args(["-l", "-Tutf8", "--warnings=w"])
            .arg(x.path().join("usr/share/man").join(page)));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().is_empty(), "man -l {page}: {err}");
        assert!(out.stdout.len() > 500, "man -l {page}: rendered nothing");
    }
    let text = std::fs::read_to_string(b.gendoc.join("man/preroot.8")).unwrap();
    for c in preroot::cli::decl::COMMANDS {
        assert!(
            text.contains(&format!(".B preroot {}", c.name)),
            "preroot.8 lacks {}",
            c.name
        );
    }
    for o in preroot::cli::decl::OPTIONS {
        let long = format!("\\-\\-{}", o.long.replace('-', "\\-"));
        assert!(text.contains(&long), "preroot.8 lacks --{}", o.long);
    }
}

/// The packaged bash completion, sourced in a plain bash: `complete -p` names its function,
/// which completes a command (`preroot con` → `context`) and an option's value
/// (`preroot render --format n` → `networkd nm`); compgen lists the registered function.
#[test]
fn bash_completion_completes_a_command_and_an_option() {
    require_packaging!("bash_completion_completes_a_command_and_an_option");
    let b = built();
    let x = common::TempDir::new("bash-x");
    run(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(x.path()));
    let file = x
        .path()
        .join("usr/share/bash-completion/completions/preroot");
    let script = format!(
        r#"set -e
source '{}'
complete -p preroot
compgen -A function _preroot
COMP_WORDS=(preroot con); COMP_CWORD=1; _preroot; echo "command: ${{COMPREPLY[*]}}"
COMP_WORDS=(preroot render --format n); COMP_CWORD=3; _preroot; echo "value: ${{COMPREPLY[*]}}"
COMP_WORDS=(preroot grow --d); COMP_CWORD=2; _preroot; echo "option: ${{COMPREPLY[*]}}"
"#,
        file.display()
    );
    let out = stdout(Command::new("bash").args(["--norc", "--noprofile", "-c", &script]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "complete -F _preroot preroot",
            "_preroot",
            "command: context",
            "value: networkd nm",
            "option: --dry-run",
        ],
        "bash completion"
    );
}
