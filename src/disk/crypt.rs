//! Root on LUKS2: grow the device under an open dm-crypt mapping (its partition), then the
//! mapping, with `cryptsetup resize`, when preroot has a key without asking anyone.
//!
//! Owns: recognising the mapping by its device-mapper UUID (`CRYPT-LUKS2-<uuid>-<name>`;
//! LUKS1, plain dm-crypt and the other `CRYPT-` kinds are reported as not grown), reading
//! the LUKS2 header of the device below ([`super::luks`]) for the data offset and the
//! tokens, the mapping's new size, choosing the key (the key file `rd.luks.key=` names, if
//! it is in the initramfs; else a LUKS2 token that unlocks unattended, `--token-only`), and
//! running `cryptsetup resize --batch-mode --size N` under the deadline with stdin from
//! `/dev/null`. Without a key it records why, leaves the mapping as it is and the boot goes
//! on: the partition below is grown, so `cryptsetup resize NAME` later (or the next unlock,
//! which maps the whole device) takes the space.
//!
//! Never: prompts (no terminal, no passphrase on stdin, no `systemd-ask-password`), reads a
//! key from another device (`rd.luks.key=PATH:KEYDEV`), resizes through the dm ioctl itself.
//! Why `cryptsetup` and not the ioctl: a LUKS2 mapping opened by systemd-cryptsetup has its
//! volume key in the kernel keyring (its table names `:64:logon:cryptsetup:...`, not the key),
//! and the key is unlinked after the open; a table reload needs the key again, which only
//! unlocking a keyslot (cryptsetup's job) gives. Nothing on disk changes: a LUKS2 data
//! segment of size `dynamic` already runs to the device's end, so an interruption leaves the
//! header as it was and the next open maps the grown device whole.

use super::{gerr, luks, Action, BlockDev, ErrorKind, GrowError, Options, Report, Status};
use crate::root::Root;
use crate::text::show;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// Where `cryptsetup` is looked for (dracut's `90crypt` installs it for non-systemd unlocks;
/// 90preroot adds it when the image has it).
const CRYPTSETUP_PATHS: &[&str] = &[
    "/usr/sbin/cryptsetup",
    "/sbin/cryptsetup",
    "/usr/bin/cryptsetup",
    "/bin/cryptsetup",
];

/// How `cryptsetup` is to unlock the keyslot it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// `--key-file PATH` (from `rd.luks.key=`).
    File(String),
    /// `--token-only --token-id ID`.
    Token(String),
}

/// The key for volume `uuid`, or why there is none. `cmdline` is the kernel command line;
/// `exists` says whether a path is a file in the initramfs.
fn choose_key(
    cmdline: &str,
    header: &luks::Luks2,
    exists: &dyn Fn(&str) -> bool,
) -> Result<Key, String> {
    let args = luks::key_args(cmdline);
    if let Some(k) = luks::key_for(&args, header.header.uuid()) {
        if let Some(dev) = &k.keydev {
            return Err(format!(
                "rd.luks.key={}:{}: the key is on another device; preroot reads key files \
                 in the initramfs only",
                show(&k.path),
                show(dev)
            ));
        }
        if !exists(&k.path) {
            return Err(format!(
                "rd.luks.key={}: no such file in the initramfs",
                show(&k.path)
            ));
        }
        return Ok(Key::File(k.path.clone()));
    }
    if let Some(t) = header.unattended_tokens().next() {
        return Ok(Key::Token(t.id.clone()));
    }
    let kinds: Vec<String> = header.tokens.iter().map(|t| show(&t.kind)).collect();
    Err(if kinds.is_empty() {
        "no key: no rd.luks.key= and no LUKS2 token".to_string()
    } else {
        format!(
            "no key: no rd.luks.key=, and no token that unlocks unattended (tokens: {})",
            kinds.join(", ")
        )
    })
}

/// The arguments of `cryptsetup` for growing mapping `name` to `bytes`.
fn resize_args(name: &str, bytes: u64, key: &Key) -> Vec<String> {
    let mut a = vec![
        "resize".to_string(),
        "--batch-mode".into(),
        "--size".into(),
        (bytes / 512).to_string(),
    ];
    match key {
        Key::File(p) => {
            a.push("--key-file".into());
            a.push(p.clone());
        }
        Key::Token(id) => {
            a.push("--token-only".into());
            a.push("--token-id".into());
            a.push(id.clone());
        }
    }
    a.push(name.to_string());
    a
}

/// Grows the device below the dm-crypt mapping `dev` (UUID `dm_uuid`), then, for LUKS2 and
/// with a key at hand, the mapping. Pushes the actions to `report`.
pub fn grow(
    root: &Root,
    dev: &BlockDev,
    dm_uuid: &str,
    opts: &Options,
    report: &mut Report,
    depth: usize,
) -> Result<(), GrowError> {
    let node = format!("/dev/{}", dev.name);
    let slaves = dev.slaves();
    let [under] = slaves.as_slice() else {
        return Err(gerr(
            ErrorKind::NotFound,
            &node,
            format!("a dm-crypt mapping on {} devices, not one", slaves.len()),
        ));
    };
    super::grow_device(root, under, opts, report, depth)?;
    let name = dev.dm_name().unwrap_or_default();
    let mut a = Action::new("luks", node.clone());
    a.disk = Some(format!("/dev/{}", under.name));
    a.old_size = dev.size_bytes().unwrap_or(0);
    a.new_size = a.old_size;
    let skip = |mut a: Action, why: String| {
        log::warn!(
            "grow: {} ({name} on {}) not resized: {why}",
            a.device,
            a.disk.as_deref().unwrap_or("?")
        );
        a.status = Status::Skipped;
        a.note = Some(why);
        a
    };
    let kind = dm_uuid.split('-').nth(1).unwrap_or("");
    if kind != "LUKS2" {
        a.format = Some(kind.to_ascii_lowercase());
        let what = match kind {
            "LUKS1" => "LUKS1",
            "PLAIN" => "plain dm-crypt",
            _ => "this dm-crypt kind",
        };
        report.actions.push(skip(
            a,
            format!(
                "{what}: preroot resizes LUKS2 mappings only; the device below is grown, \
                 `cryptsetup resize {name}` takes the space"
            ),
        ));
        return Ok(());
    }
    a.format = Some("luks2".into());
    let under_node = under.node(root);
    let header = match header_of(&under_node, dm_uuid)? {
        Ok(h) => h,
        Err(why) => {
            report.actions.push(skip(a, why));
            return Ok(());
        }
    };
    let under_bytes = under
        .size_bytes()
        .ok_or_else(|| gerr(ErrorKind::Io, under_node.display(), "no size in sysfs"))?;
    let target = match header.target_bytes(under_bytes) {
        Ok(t) => t,
        Err(why) => {
            report.actions.push(skip(a, why.to_string()));
            return Ok(());
        }
    };
    if target <= a.old_size {
        a.note = Some("already fills its device".into());
        report.actions.push(a);
        return Ok(());
    }
    a.new_size = target;
    let cmdline = std::fs::read_to_string(root.cmdline()).unwrap_or_default();
    let key = match choose_key(&cmdline, &header, &|p| root.join(p).is_file()) {
        Ok(k) => k,
        Err(why) => {
            a.new_size = a.old_size;
            report.actions.push(skip(
                a,
                format!(
                    "{why}; the device below is grown, `cryptsetup resize {name}` takes the space"
                ),
            ));
            return Ok(());
        }
    };
    let args = resize_args(&name, target, &key);
    a.steps.push(format!("cryptsetup {}", args.join(" ")));
    if opts.dry_run {
        a.status = Status::Planned;
        report.actions.push(a);
        return Ok(());
    }
    let Some(cryptsetup) = CRYPTSETUP_PATHS
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
    else {
        a.new_size = a.old_size;
        report
            .actions
            .push(skip(a, "cryptsetup is not in the initramfs".into()));
        return Ok(());
    };
    run_resize(cryptsetup, &name, &args, opts)?;
    // cryptsetup waits for the table reload; sysfs follows it.
    let until = crate::deadline::Deadline::after(Duration::from_secs(5));
    while dev.size_bytes() != Some(target) && !until.passed() {
        std::thread::sleep(Duration::from_millis(20));
    }
    a.new_size = dev.size_bytes().unwrap_or(target);
    a.status = Status::Done;
    log::info!(
        "grow: LUKS2 {name} ({}): {} -> {} bytes",
        a.disk.as_deref().unwrap_or("?"),
        a.old_size,
        a.new_size
    );
    report.actions.push(a);
    #[cfg(feature = "fault-injection")]
    super::fault_after_step("luks-resize", &[under_node]);
    Ok(())
}

/// The LUKS2 header on `under_node` (the device below mapping `dm_uuid`), or why there is
/// none to go by: a header elsewhere (`--header`, a detached one) or another volume's.
/// The outer error is the device failing to open.
fn header_of(
    under_node: &std::path::Path,
    dm_uuid: &str,
) -> Result<Result<luks::Luks2, String>, GrowError> {
    let f = std::fs::File::open(under_node)
        .map_err(|e| gerr(ErrorKind::Io, under_node.display(), e))?;
    let read = luks::read(&mut |off, len| {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off).map(|()| buf)
    });
    let hex = dm_uuid
        .strip_prefix("CRYPT-LUKS2-")
        .and_then(|r| r.split('-').next())
        .unwrap_or("");
    Ok(match read {
        Ok(h) if luks::same_uuid(hex, h.header.uuid()) => Ok(h),
        Ok(h) => Err(format!(
            "the LUKS2 header on {} is {}, not the mapping's ({dm_uuid}): a detached header?",
            under_node.display(),
            show(h.header.uuid())
        )),
        Err(e) => Err(format!(
            "{}: {e} (a detached header?); the device below is grown",
            under_node.display()
        )),
    })
}

/// Runs `cryptsetup` (at path `cryptsetup`) with `args` for mapping `name`; an exit status
/// other than 0 is an error with cryptsetup's stderr in it.
fn run_resize(
    cryptsetup: &str,
    name: &str,
    args: &[String],
    opts: &Options,
) -> Result<(), GrowError> {
    // Unlocking a keyslot runs its PBKDF (Argon2 sized for a second or two on the machine
    // that formatted it): give it at least a minute.
    let deadline =
        crate::deadline::Deadline::after(opts.deadline.remaining().max(Duration::from_secs(60)));
    let started = std::time::Instant::now();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = crate::sys::spawn::run(
        cryptsetup,
        &argv,
        &["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"],
        deadline.instant(),
        1 << 16,
    )
    .map_err(|e| gerr(ErrorKind::Io, "cryptsetup resize", e))?;
    log::info!(
        "grow: cryptsetup resize {name}: {} ms",
        started.elapsed().as_millis()
    );
    if out.code != Some(0) {
        let how = out.code.map_or_else(
            || "killed by a signal".to_string(),
            |c| format!("exit status {c}"),
        );
        return Err(gerr(
            ErrorKind::Io,
            format!("cryptsetup resize {name}"),
            format!(
                "{how}: {}; the device below is grown, the mapping is not",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::luks::tests::{copy, json, SEGMENT, UUID_TEXT};

    fn header(tokens: &str) -> luks::Luks2 {
        luks::parse(&copy(0, 16384, 1, &json(SEGMENT, tokens, "")), 0).unwrap()
    }

    #[test]
    fn keys() {
        let tpm = r#""3":{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pin":false}"#;
        let fido = r#""0":{"type":"systemd-fido2","keyslots":["1"]}"#;
        let forged = r#""0":{"type":"x\nno key: forged","keyslots":["1"]}"#;
        let exists = |p: &str| p == "/etc/luks.key";
        for (case, line, tokens, want) in [
            ("key file", "rd.luks.key=/etc/luks.key".to_string(), "", Ok(Key::File("/etc/luks.key".into()))),
            ("key file for this volume", format!("rd.luks.key={UUID_TEXT}=/etc/luks.key"), tpm, Ok(Key::File("/etc/luks.key".into()))),
            ("tpm2 token", String::new(), tpm, Ok(Key::Token("3".into()))),
            ("missing key file", "rd.luks.key=/etc/other".to_string(), tpm, Err("rd.luks.key=/etc/other: no such file in the initramfs".to_string())),
            ("key on a device", "rd.luks.key=/k:/dev/sdb1".to_string(), "", Err("rd.luks.key=/k:/dev/sdb1: the key is on another device; preroot reads key files in the initramfs only".to_string())),
            ("nothing", "root=/dev/mapper/x".to_string(), "", Err("no key: no rd.luks.key= and no LUKS2 token".to_string())),
            ("fido2 only", String::new(), fido, Err("no key: no rd.luks.key=, and no token that unlocks unattended (tokens: systemd-fido2)".to_string())),
            ("a token kind with a newline, from the disk", String::new(), forged, Err(r"no key: no rd.luks.key=, and no token that unlocks unattended (tokens: x\nno key: forged)".to_string())),
        ] {
            assert_eq!(choose_key(&line, &header(tokens), &exists), want, "case {case}");
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(
            resize_args("luks-x", 4 << 20, &Key::File("/etc/k".into())).join(" "),
            "resize --batch-mode --size 8192 --key-file /etc/k luks-x"
        );
        assert_eq!(
            resize_args("r", 1 << 20, &Key::Token("0".into())).join(" "),
            "resize --batch-mode --size 2048 --token-only --token-id 0 r"
        );
    }
}
