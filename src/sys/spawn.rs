//! Running one external tool (`lvm`) with a deadline: `posix_spawn`, two pipes, `poll`,
//! `waitpid`, and `SIGKILL` when the deadline passes; and [`signal_group`], which signals a
//! whole process group (`preroot apply` kills a script's children with it at the deadline).
//!
//! Why not `std::process::Command`: measured on the static release binary, it cost
//! 45,056 bytes (its environment map, fork/exec fallback paths and `ExitStatus`
//! formatting); this costs a fraction. Output is drained while the child runs, so a
//! chatty tool never blocks on a full pipe; past `cap` bytes the rest is read and dropped.
//! The child gets `/dev/null` as stdin, only the environment it is given, and `SIGPIPE`
//! back at its default (Rust ignores it in this process).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// What the tool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument"))
}

/// Posix-spawn functions return the error number instead of setting errno.
fn check_errno(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

fn pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe2 writes two fds into the live two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let [r, w] = fds;
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(r), OwnedFd::from_raw_fd(w)) })
}

/// Spawn-time state that must be destroyed: file actions and attributes.
struct Spawn {
    actions: libc::posix_spawn_file_actions_t,
    attr: libc::posix_spawnattr_t,
}

impl Drop for Spawn {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `run` before this value was made.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

/// Runs `path` with `args` and environment `env` (`NAME=value`), until it exits or
/// `deadline` passes (then it is killed and `TimedOut` returned). Keeps at most `cap` bytes
/// of each output.
pub fn run(
    path: &str,
    args: &[&str],
    env: &[&str],
    deadline: Instant,
    cap: usize,
) -> io::Result<Output> {
    let path_c = cstring(path)?;
    let argv_c: Vec<CString> = std::iter::once(path)
        .chain(args.iter().copied())
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let env_c: Vec<CString> = env
        .iter()
        .copied()
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let ptrs = |v: &[CString]| -> Vec<*mut libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    };
    let (argv, envp) = (ptrs(&argv_c), ptrs(&env_c));
    let null = File::open("/dev/null")?;
    let (mut out_r, out_w) = pipe()?;
    let (mut err_r, err_w) = pipe()?;

    // SAFETY: zeroed memory is a valid argument for the init functions, which are called
    // right after; `Spawn` destroys them on every path after that.
    let mut s: Spawn = unsafe { std::mem::zeroed() };
    // SAFETY: init takes pointers to the live, zeroed structs.
    check_errno(unsafe { libc::posix_spawn_file_actions_init(&mut s.actions) })?;
    // SAFETY: as above.
    check_errno(unsafe { libc::posix_spawnattr_init(&mut s.attr) })?;
    for (fd, target) in [
        (null.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
    ] {
        // SAFETY: the actions are initialised; the fds stay open until after the spawn.
        check_errno(unsafe { libc::posix_spawn_file_actions_adddup2(&mut s.actions, fd, target) })?;
    }
    // SAFETY: sigemptyset/sigaddset write into the live sigset; the attr is initialised.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        check_errno(libc::posix_spawnattr_setsigdefault(&mut s.attr, &set))?;
        check_errno(libc::posix_spawnattr_setflags(
            &mut s.attr,
            libc::POSIX_SPAWN_SETSIGDEF as libc::c_short,
        ))?;
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is live for the call: the path, the NULL-terminated argv and
    // envp arrays (whose strings `argv_c`/`env_c` own), the actions and the attributes.
    check_errno(unsafe {
        libc::posix_spawn(
            &mut pid,
            path_c.as_ptr(),
            &s.actions,
            &s.attr,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    drop((out_w, err_w, null, s));

    let mut out = Output {
        code: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let mut open = [true, true];
    let mut buf = vec![0u8; 16384];
    let mut timed_out = false;
    while open.iter().any(|o| *o) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let fd = |i: bool, f: &File| if i { f.as_raw_fd() } else { -1 };
        let [o0, o1] = open;
        let mut fds = [
            libc::pollfd {
                fd: fd(o0, &out_r),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd(o1, &err_r),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = libc::c_int::try_from(left.as_millis())
            .unwrap_or(libc::c_int::MAX)
            .max(1);
        // SAFETY: poll reads and writes the live two-element array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            kill(pid);
            return Err(e);
        }
        let [p0, p1] = fds;
        for (i, (p, file, keep)) in [
            (p0, &mut out_r, &mut out.stdout),
            (p1, &mut err_r, &mut out.stderr),
        ]
        .into_iter()
        .enumerate()
        {
            if p.revents == 0 {
                continue;
            }
            match file.read(&mut buf) {
                Ok(0) | Err(_) => {
                    if let Some(o) = open.get_mut(i) {
                        *o = false;
                    }
                }
                Ok(k) => {
                    let room = cap.saturating_sub(keep.len());
                    keep.extend_from_slice(buf.get(..k.min(room)).unwrap_or_default());
                }
            }
        }
    }
    // Both pipes closed: the child is exiting. Reap it, still under the deadline.
    let mut status: libc::c_int = 0;
    loop {
        if timed_out || Instant::now() >= deadline {
            kill(pid);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{path}: timed out; killed"),
            ));
        }
        // SAFETY: waitpid writes the live int; pid is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if libc::WIFEXITED(status) {
        out.code = Some(libc::WEXITSTATUS(status));
    }
    Ok(out)
}

/// SIGKILL and reap.
fn kill(pid: libc::pid_t) {
    let mut status: libc::c_int = 0;
    // SAFETY: pid is our unreaped child, so it cannot have been reused; waitpid writes the
    // live int.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
}

/// A signal for [`signal_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    /// `SIGTERM`: ask the processes to end.
    Terminate,
    /// `SIGKILL`.
    Kill,
    /// Signal 0: only ask whether any process is left in the group.
    Probe,
}

/// Sends `sig` to every process in the process group `pgid` (a child started with
/// `CommandExt::process_group(0)`, whose group id is its pid). `Ok(false)`: no process is
/// left in the group (`ESRCH`; unreaped zombies still count). Refuses 0 and 1, which
/// `kill(2)` would read as "our own group" and "every process we may signal".
pub fn signal_group(pgid: u32, sig: GroupSignal) -> io::Result<bool> {
    let id = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("process group {pgid}: not a child's group"),
            )
        })?;
    let signo = match sig {
        GroupSignal::Terminate => libc::SIGTERM,
        GroupSignal::Kill => libc::SIGKILL,
        GroupSignal::Probe => 0,
    };
    // SAFETY: kill(2) takes plain integers; -id (id > 1) names exactly one process group.
    if unsafe { libc::kill(-id, signo) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sh(script: &str, secs: u64) -> io::Result<Output> {
        run(
            "/bin/sh",
            &["-c", script],
            &["PATH=/usr/bin:/bin", "X=1"],
            Instant::now() + Duration::from_secs(secs),
            100_000,
        )
    }

    #[test]
    fn outputs_status_env() {
        let o = sh("echo out; echo err >&2; echo $X; exit 3", 10).unwrap();
        assert_eq!(
            (o.code, o.stdout.as_slice(), o.stderr.as_slice()),
            (Some(3), &b"out\n1\n"[..], &b"err\n"[..])
        );
        // Reads stdin from /dev/null; a signal leaves no code.
        let o = sh("cat; kill -9 $$", 10).unwrap();
        assert_eq!(o.code, None);
    }

    #[test]
    fn large_output_is_drained_and_capped() {
        let o = sh(
            "head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2",
            20,
        )
        .unwrap();
        assert_eq!(
            (o.code, o.stdout.len(), o.stderr.len()),
            (Some(0), 100_000, 100_000)
        );
    }

    #[test]
    fn deadline_kills() {
        let t = Instant::now();
        let e = sh("sleep 30", 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        // A child that closes its outputs and keeps running is killed too.
        let e = sh("exec >&- 2>&-; sleep 30", 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(run(
            "/nonexistent",
            &[],
            &[],
            Instant::now() + Duration::from_secs(1),
            10
        )
        .is_err());
    }

    #[test]
    fn signal_group_refuses_own_and_all() {
        for pgid in [0, 1, u32::MAX] {
            assert!(
                signal_group(pgid, GroupSignal::Probe).is_err(),
                "pgid {pgid} must be refused"
            );
        }
    }

    #[test]
    fn signal_group_reaches_grandchildren() {
        use std::os::unix::process::CommandExt;
        // sh starts a background sleep (the grandchild) and waits for it.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(signal_group(child.id(), GroupSignal::Probe).unwrap());
        assert!(signal_group(child.id(), GroupSignal::Kill).unwrap());
        child.wait().unwrap();
        // The grandchild got SIGKILL too: gone, or a zombie waiting for init to reap it.
        let t = Instant::now();
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            let dead = stat.map_or(true, |s| s.contains(") Z "));
            if dead {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "grandchild {grandchild} alive"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
