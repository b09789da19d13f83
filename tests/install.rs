//! `make install DESTDIR=…` lays out the binary, the dracut module and its units where dracut
//! and systemd find them (their own answer: `pkg-config --variable=dracutmodulesdir dracut`,
//! `systemdsystemunitdir systemd`), and the units pass `systemd-analyze verify`.

mod common;

use common::TempDir;
use std::path::Path;
use std::process::Command;

#[test]
fn install_layout_and_units_verify() {
    require!("install_layout_and_units_verify"; "make", "systemd-analyze", "bash", "pkg-config");
    let dest = TempDir::new("install");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("make")
        .arg("-C")
        .arg(repo)
        .arg("install")
        .arg(format!("DESTDIR={}", dest.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dest.path();
    let pc = |var: &str, pkg: &str| {
        let out = Command::new("pkg-config")
            .arg(format!("--variable={var}"))
            .arg(pkg)
            .output()
            .unwrap();
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(dir.starts_with('/'), "pkg-config {var} {pkg}: {dir:?}");
        d.join(dir.trim_start_matches('/'))
    };
    let module = pc("dracutmodulesdir", "dracut").join("90preroot");
    let conf = pc("dracutconfdir", "dracut");
    let units_dir = pc("systemdsystemunitdir", "systemd");
    for (path, mode) in [
        (d.join("usr/bin/preroot"), 0o755),
        (module.join("module-setup.sh"), 0o755),
        (module.join("preroot-pre-mount.sh"), 0o755),
        (module.join("preroot-pre-pivot.sh"), 0o755),
        (module.join("preroot-fetch.service"), 0o644),
        (module.join("preroot-grow.service"), 0o644),
        (module.join("preroot-sysroot.service"), 0o644),
        (conf.join("90-preroot.conf"), 0o644),
        (units_dir.join("preroot-apply.service"), 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
    // The installed binary is the static one and runs.
    let v = Command::new(d.join("usr/bin/preroot"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("preroot "));
    for script in [
        "module-setup.sh",
        "preroot-pre-mount.sh",
        "preroot-pre-pivot.sh",
    ] {
        let st = Command::new("bash")
            .arg("-n")
            .arg(module.join(script))
            .status()
            .unwrap();
        assert!(st.success(), "{script} has a syntax error");
    }
    // Unit files: systemd's own checker. It resolves ExecStart on this machine, so check
    // copies that point at the installed binary; unknown keys or a missing command fail it.
    let units = TempDir::new("install-units");
    let bin = d.join("usr/bin/preroot");
    let mut paths = Vec::new();
    for p in ["fetch", "grow", "sysroot"] {
        let text = std::fs::read_to_string(module.join(format!("preroot-{p}.service"))).unwrap();
        assert!(
            text.contains("ExecStart=/usr/bin/preroot run --phase "),
            "{p}: ExecStart"
        );
        let copy = units.path().join(format!("preroot-{p}.service"));
        std::fs::write(
            &copy,
            text.replace("/usr/bin/preroot", bin.to_str().unwrap()),
        )
        .unwrap();
        paths.push(copy);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}
