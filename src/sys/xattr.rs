//! The `security.selinux` extended attribute: set and read a file's SELinux label on an open
//! descriptor (`fsetxattr`/`fgetxattr`: a temporary file is labelled before its rename, so
//! the name never points at an unlabelled file) or on a path without following a final
//! symlink (`lsetxattr`/`lgetxattr`).
//!
//! Owns only the system calls (xattr(7), setxattr(2), getxattr(2)) and the errno meanings.
//! The value written is the label and a trailing NUL, as libselinux's `fsetfilecon_raw`
//! writes it; values read have trailing NULs cut. With no policy loaded (the initramfs) or
//! no SELinux in the kernel, ext4, xfs, btrfs and tmpfs store the bytes as given (writing
//! the `security.` namespace then needs CAP_SYS_ADMIN); with a policy loaded, the kernel
//! checks the label (EINVAL for one the policy does not know) and the relabel permissions.
//! Does not pick labels: `selinux::Labeler` does.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The attribute's name (`XATTR_NAME_SELINUX`).
pub const SELINUX: &str = "security.selinux";
const SELINUX_C: &std::ffi::CStr = c"security.selinux";
/// Longest label accepted (the kernel's page-sized limit on a context, less the NUL).
pub const MAX_LABEL: usize = 4095;

fn check_label(label: &str) -> io::Result<Vec<u8>> {
    if label.is_empty()
        || label.len() > MAX_LABEL
        || label.bytes().any(|b| b == 0 || !b.is_ascii_graphic())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{SELINUX}: {label:?} is not a label"),
        ));
    }
    let mut value = label.as_bytes().to_vec();
    value.push(0);
    Ok(value)
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// An errno from the xattr calls as an error that says what it means here.
fn meaning(err: io::Error, what: &str) -> io::Error {
    let why = match err.raw_os_error() {
        Some(libc::ENOTSUP) => "the filesystem does not store security labels",
        Some(libc::EPERM) => {
            "not permitted (needs CAP_SYS_ADMIN, or the relabel permission under a loaded policy)"
        }
        Some(libc::EINVAL) => "the loaded policy does not know this label",
        Some(libc::EACCES) => "permission denied",
        Some(libc::ELOOP) => "is a symlink, not followed",
        Some(libc::ENOENT) => "no such file",
        _ => "",
    };
    let msg = if why.is_empty() {
        format!("{what}: {SELINUX}: {err}")
    } else {
        format!("{what}: {SELINUX}: {why} ({err})")
    };
    io::Error::new(err.kind(), msg)
}

fn ret(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets the label of the open file `fd` (`fsetxattr`).
pub fn set_fd(fd: BorrowedFd<'_>, label: &str) -> io::Result<()> {
    let value = check_label(label)?;
    // SAFETY: the name is a NUL-terminated constant, `value` is a live buffer of the length
    // passed, and the kernel only reads both; `fd` is open for the duration (borrowed).
    ret(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            SELINUX_C.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map_err(|e| meaning(e, &format!("fd {}", fd.as_raw_fd())))
}

/// Sets the label of `path` itself, a symlink included (`lsetxattr`: a final symlink is not
/// followed; earlier components are, so pass paths the caller controls).
pub fn set_nofollow(path: &Path, label: &str) -> io::Result<()> {
    let value = check_label(label)?;
    let c = cpath(path)?;
    // SAFETY: `c` and the name are NUL-terminated and live, `value` is a live buffer of the
    // length passed; the kernel only reads them.
    ret(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            SELINUX_C.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map_err(|e| meaning(e, &path.display().to_string()))
}

/// Turns a getxattr result into the label: `None` for ENODATA (no label).
fn label_from(rc: isize, buf: &[u8]) -> io::Result<Option<String>> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODATA) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let len = usize::try_from(rc).unwrap_or(0).min(buf.len());
    let mut value = buf.get(..len).unwrap_or_default();
    while let Some(rest) = value.strip_suffix(&[0]) {
        value = rest;
    }
    Ok(Some(String::from_utf8_lossy(value).into_owned()))
}

/// The label of the open file `fd` (`fgetxattr`); `None` when it has none.
pub fn get_fd(fd: BorrowedFd<'_>) -> io::Result<Option<String>> {
    let mut buf = vec![0u8; MAX_LABEL.saturating_add(1)];
    // SAFETY: `buf` is a live, writable buffer of the length passed; the name is a
    // NUL-terminated constant.
    let rc = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            SELINUX_C.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    label_from(rc, &buf).map_err(|e| meaning(e, &format!("fd {}", fd.as_raw_fd())))
}

/// The label of `path` itself, not following a final symlink (`lgetxattr`); `None` when it
/// has none.
pub fn get_nofollow(path: &Path) -> io::Result<Option<String>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; MAX_LABEL.saturating_add(1)];
    // SAFETY: `c` and the name are NUL-terminated and live; `buf` is a live, writable buffer
    // of the length passed.
    let rc = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            SELINUX_C.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    label_from(rc, &buf).map_err(|e| meaning(e, &path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_check_cases() {
        let long = "a".repeat(MAX_LABEL + 1);
        let cases: &[(&str, &str, bool)] = &[
            ("a label", "system_u:object_r:net_conf_t:s0", true),
            ("MLS range", "system_u:object_r:etc_t:s0-s0:c0.c1023", true),
            ("empty", "", false),
            ("NUL", "a\0b", false),
            ("blank", "a b", false),
            ("newline", "a\n", false),
            ("too long", &long, false),
        ];
        for (name, label, ok) in cases {
            assert_eq!(check_label(label).is_ok(), *ok, "case {name}");
        }
        assert_eq!(check_label("x").unwrap(), b"x\0", "written with its NUL");
    }
}
