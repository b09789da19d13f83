//! The one way preroot runs another program: [`exec`] with a deadline — `posix_spawn`, pipes,
//! `poll`, `waitpid` — for `lvm` in the initramfs ([`run`], output captured) and for every
//! program `preroot apply` runs (output to its log, optional stdin, a process group of its
//! own); and [`signal_group`], which signals a whole process group.
//!
//! At the deadline a child is killed (`SIGKILL`); a child in its own process group has the
//! whole group stopped: `SIGTERM`, a grace of [`GRACE`], then `SIGKILL`, so a script's
//! background children die with it (a program that exits by itself keeps them: daemons a
//! script starts on purpose). A process that left the group (`setsid`) is not reached.
//!
//! Why not `std::process::Command`: measured on the static release binary, it cost
//! 45,056 bytes (its environment map, fork/exec fallback paths and `ExitStatus`
//! formatting); this costs a fraction. Output is drained while the child runs, so a
//! chatty tool never blocks on a full pipe; past `cap` bytes the rest is read and dropped.
//! The child gets `/dev/null` as stdin unless given bytes, only the environment it is given,
//! and `SIGPIPE` back at its default (Rust ignores it in this process). Never searches a
//! `PATH` of its own: [`which`] resolves a name against the one the caller names.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

/// How long a process group has between `SIGTERM` and `SIGKILL`.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long to wait for killed processes to be gone before giving up.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What the child reads.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    /// `/dev/null`.
    Null,
    /// These bytes, then end of file. Small inputs only (a `chpasswd` line): what does not
    /// fit the pipe at once is an error, never a blocked parent.
    Bytes(&'a [u8]),
}

/// Where the child's stdout and stderr go.
#[derive(Debug, Clone, Copy)]
pub enum Sink<'a> {
    /// Kept, at most `cap` bytes of each (the rest is read and dropped).
    Capture { cap: usize },
    /// Both appended to this file (a log).
    File(&'a File),
    /// `/dev/null`.
    Null,
}

/// A program to run.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// The program's path (not searched: see [`which`]).
    pub path: &'a str,
    pub args: &'a [&'a str],
    /// The whole environment, `NAME=value`.
    pub env: &'a [&'a str],
    /// The working directory, else this process's.
    pub dir: Option<&'a str>,
    pub stdin: Stdin<'a>,
    pub output: Sink<'a>,
    /// A process group of its own, stopped as a whole at the deadline.
    pub group: bool,
}

/// What the program did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when a signal ended it (or the deadline did).
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The deadline passed and it was killed.
    pub timed_out: bool,
    /// After the kill, something was still in its process group (zombies not yet reaped by
    /// their new parent count).
    pub survivors: bool,
}

impl Output {
    /// The shell's view of the status: the exit code, or 128 + the signal; -1 when neither.
    pub fn status(&self) -> i32 {
        self.code
            .or_else(|| self.signal.map(|s| s.saturating_add(128)))
            .unwrap_or(-1)
    }
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

fn pipe() -> io::Result<(File, File)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe2 writes two fds into the live two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let [r, w] = fds;
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(r), File::from_raw_fd(w)) })
}

/// `prog` as a path: itself when it names one (has a `/`), else the first executable
/// `DIR/prog` for DIR in `path` (a `PATH` value).
pub fn which(prog: &str, path: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if prog.contains('/') {
        return Some(prog.to_string());
    }
    path.split(':').filter(|d| !d.is_empty()).find_map(|dir| {
        let full = format!("{dir}/{prog}");
        let meta = std::fs::metadata(&full).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(full)
    })
}

/// Spawn-time state that must be destroyed: file actions and attributes.
struct Attrs {
    actions: libc::posix_spawn_file_actions_t,
    attr: libc::posix_spawnattr_t,
}

impl Drop for Attrs {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `Attrs::new` before this value was returned.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

impl Attrs {
    /// File actions that put `fds` on 0, 1 and 2 and enter `dir`; `SIGPIPE` at its default;
    /// a new process group when `group`.
    fn new(fds: [libc::c_int; 3], dir: Option<&CString>, group: bool) -> io::Result<Attrs> {
        // SAFETY: zeroed memory is a valid argument for the init functions, which are called
        // right after.
        let mut a: Attrs = unsafe { std::mem::zeroed() };
        // SAFETY: init takes pointers to the live, zeroed structs; `Attrs` destroys them on
        // every path after this.
        check_errno(unsafe { libc::posix_spawn_file_actions_init(&mut a.actions) })?;
        // SAFETY: as above.
        check_errno(unsafe { libc::posix_spawnattr_init(&mut a.attr) })?;
        for (target, fd) in (0..).zip(fds) {
            // SAFETY: the actions are initialised; the fds stay open until after the spawn.
            check_errno(unsafe {
                libc::posix_spawn_file_actions_adddup2(&mut a.actions, fd, target)
            })?;
        }
        if let Some(dir) = dir {
            // SAFETY: the actions are initialised; `dir` outlives the spawn.
            check_errno(unsafe {
                libc::posix_spawn_file_actions_addchdir_np(&mut a.actions, dir.as_ptr())
            })?;
        }
        let mut flags = libc::POSIX_SPAWN_SETSIGDEF;
        if group {
            flags |= libc::POSIX_SPAWN_SETPGROUP;
            // SAFETY: the attr is initialised; 0 asks for a group whose id is the child's pid.
            check_errno(unsafe { libc::posix_spawnattr_setpgroup(&mut a.attr, 0) })?;
        }
        // SAFETY: sigemptyset/sigaddset write into the live sigset; the attr is initialised.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            check_errno(libc::posix_spawnattr_setsigdefault(&mut a.attr, &set))?;
            check_errno(libc::posix_spawnattr_setflags(
                &mut a.attr,
                libc::c_short::try_from(flags).unwrap_or_default(),
            ))?;
        }
        Ok(a)
    }
}

/// A started child and the parent's ends of its pipes.
struct Child {
    pid: libc::pid_t,
    out: Option<File>,
    err: Option<File>,
}

/// Starts `spec`'s program.
fn spawn(spec: &Spec) -> io::Result<Child> {
    let path_c = cstring(spec.path)?;
    let argv_c: Vec<CString> = std::iter::once(spec.path)
        .chain(spec.args.iter().copied())
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let env_c: Vec<CString> = spec
        .env
        .iter()
        .copied()
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let dir_c = spec.dir.map(cstring).transpose()?;
    let ptrs = |v: &[CString]| -> Vec<*mut libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    };
    let (argv, envp) = (ptrs(&argv_c), ptrs(&env_c));
    let null = File::options().read(true).write(true).open("/dev/null")?;
    // The child's ends (closed here after the spawn) and the parent's.
    let (stdin_child, stdin_parent) = match spec.stdin {
        Stdin::Null => (null.try_clone()?, None),
        Stdin::Bytes(_) => {
            let (r, w) = pipe()?;
            (r, Some(w))
        }
    };
    let (out_child, err_child, out, err) = match spec.output {
        Sink::Capture { .. } => {
            let (or, ow) = pipe()?;
            let (er, ew) = pipe()?;
            (ow, ew, Some(or), Some(er))
        }
        Sink::File(f) => (f.try_clone()?, f.try_clone()?, None, None),
        Sink::Null => (null.try_clone()?, null.try_clone()?, None, None),
    };
    let fds = [
        stdin_child.as_raw_fd(),
        out_child.as_raw_fd(),
        err_child.as_raw_fd(),
    ];
    let attrs = Attrs::new(fds, dir_c.as_ref(), spec.group)?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is live for the call: the path, the NULL-terminated argv and
    // envp arrays (whose strings `argv_c`/`env_c` own), the actions and the attributes.
    check_errno(unsafe {
        libc::posix_spawn(
            &mut pid,
            path_c.as_ptr(),
            &attrs.actions,
            &attrs.attr,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    drop((stdin_child, out_child, err_child, null, attrs));
    if let (Stdin::Bytes(data), Some(mut w)) = (spec.stdin, stdin_parent) {
        // Non-blocking: a child that does not read cannot hold the parent past its deadline.
        if let Err(e) = set_nonblocking(&w).and_then(|()| w.write_all(data)) {
            stop(pid, spec.group);
            return Err(e);
        }
    }
    Ok(Child { pid, out, err })
}

fn set_nonblocking(fd: &File) -> io::Result<()> {
    // SAFETY: fcntl on a live fd, with plain integer arguments.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the child's captured outputs until both close or the deadline passes (true).
fn drain(child: &mut Child, out: &mut Output, cap: usize, deadline: Instant) -> io::Result<bool> {
    let mut buf = vec![0u8; 16384];
    while child.out.is_some() || child.err.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(true);
        }
        let fd = |f: &Option<File>| f.as_ref().map_or(-1, File::as_raw_fd);
        let mut fds = [
            libc::pollfd {
                fd: fd(&child.out),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd(&child.err),
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
            return Err(e);
        }
        let [p0, p1] = fds;
        for (p, file, keep) in [
            (p0, &mut child.out, &mut out.stdout),
            (p1, &mut child.err, &mut out.stderr),
        ] {
            let Some(f) = file.as_mut().filter(|_| p.revents != 0) else {
                continue;
            };
            match f.read(&mut buf) {
                Ok(0) | Err(_) => *file = None,
                Ok(k) => {
                    let room = cap.saturating_sub(keep.len());
                    keep.extend_from_slice(buf.get(..k.min(room)).unwrap_or_default());
                }
            }
        }
    }
    Ok(false)
}

/// Reaps `pid` if it has exited: its wait status.
fn try_reap(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the live int; pid is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        Ok(Some(status))
    } else if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(None)
    }
}

/// Runs `spec` until it exits or `deadline` passes (then it, or its whole group, is
/// stopped and `timed_out` set). An error means it could not be started or watched.
pub fn exec(spec: &Spec, deadline: Instant) -> io::Result<Output> {
    let mut child = spawn(spec)?;
    let mut out = Output::default();
    let cap = match spec.output {
        Sink::Capture { cap } => cap,
        Sink::File(_) | Sink::Null => 0,
    };
    let timed_out = match drain(&mut child, &mut out, cap, deadline) {
        Ok(t) => t,
        Err(e) => {
            stop(child.pid, spec.group);
            return Err(e);
        }
    };
    // Outputs closed: the child is exiting. Reap it, still under the deadline.
    let status = loop {
        if timed_out || Instant::now() >= deadline {
            out.timed_out = true;
            out.survivors = stop(child.pid, spec.group);
            return Ok(out);
        }
        match try_reap(child.pid) {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e),
        }
    };
    if libc::WIFEXITED(status) {
        out.code = Some(libc::WEXITSTATUS(status));
    } else if libc::WIFSIGNALED(status) {
        out.signal = Some(libc::WTERMSIG(status));
    }
    Ok(out)
}

/// Runs `path` with `args` and environment `env` (`NAME=value`), capturing at most `cap`
/// bytes of each output, until it exits or `deadline` passes (then it is killed and
/// `TimedOut` returned). How the initramfs runs `lvm`.
pub fn run(
    path: &str,
    args: &[&str],
    env: &[&str],
    deadline: Instant,
    cap: usize,
) -> io::Result<Output> {
    let spec = Spec {
        path,
        args,
        env,
        dir: None,
        stdin: Stdin::Null,
        output: Sink::Capture { cap },
        group: false,
    };
    let out = exec(&spec, deadline)?;
    if out.timed_out {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{path}: timed out; killed"),
        ));
    }
    Ok(out)
}

/// Stops a child at its deadline and reaps it: `SIGKILL`, or for a group of its own
/// [`stop_group`]. Returns whether something survived in the group.
fn stop(pid: libc::pid_t, group: bool) -> bool {
    if group {
        if let Ok(pgid) = u32::try_from(pid) {
            return stop_group(pid, pgid);
        }
    }
    let mut status: libc::c_int = 0;
    // SAFETY: pid is our unreaped child, so it cannot have been reused; waitpid writes the
    // live int.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    false
}

/// `SIGTERM` to the group, up to [`GRACE`] for it to end, then `SIGKILL`; reaps the child.
/// Returns whether something was still in the group after [`KILL_WAIT`].
fn stop_group(pid: libc::pid_t, pgid: u32) -> bool {
    let mut reaped = false;
    // Every wait below is bounded: polls until its limit.
    let mut until = |limit: Duration| -> bool {
        let end = crate::deadline::Deadline::after(limit);
        loop {
            reaped = reaped || !matches!(try_reap(pid), Ok(None));
            let empty = matches!(signal_group(pgid, GroupSignal::Probe), Ok(false) | Err(_));
            if reaped && empty {
                return true;
            }
            if end.passed() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let kill_child = |sig| {
        // SAFETY: kill(2) with plain integers; pid is our child (unreaped until `until`).
        unsafe { libc::kill(pid, sig) };
    };
    if signal_group(pgid, GroupSignal::Terminate).is_err() {
        kill_child(libc::SIGKILL);
    }
    if until(GRACE) {
        return false;
    }
    log::warn!("process group {pgid} still running after SIGTERM; SIGKILL");
    if signal_group(pgid, GroupSignal::Kill).is_err() {
        kill_child(libc::SIGKILL);
    }
    !until(KILL_WAIT)
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
    let group = id
        .checked_neg()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes plain integers; -id (id > 1) names exactly one process group.
    if unsafe { libc::kill(group, signo) } == 0 {
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
    fn stdin_file_output_group_and_which() {
        let log_path = std::env::temp_dir().join(format!("preroot-spawn-{}", std::process::id()));
        let log = File::create(&log_path).unwrap();
        let spec = Spec {
            path: "/bin/sh",
            args: &[
                "-c",
                "read l; echo got $l; pwd; echo err >&2; kill -TERM $$",
            ],
            env: &["PATH=/usr/bin:/bin"],
            dir: Some("/"),
            stdin: Stdin::Bytes(b"line\n"),
            output: Sink::File(&log),
            group: true,
        };
        let o = exec(&spec, Instant::now() + Duration::from_secs(10)).unwrap();
        assert_eq!(
            (o.code, o.signal, o.status()),
            (None, Some(libc::SIGTERM), 143)
        );
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(
            text, "got line\n/\nerr\n",
            "stdin, working directory, both outputs"
        );
        std::fs::remove_file(&log_path).unwrap();
        // A group that ignores SIGTERM is killed after the grace, and the call returns.
        let spec = Spec {
            path: "/bin/sh",
            args: &["-c", "trap '' TERM; sleep 30 & wait"],
            env: &["PATH=/usr/bin:/bin"],
            dir: None,
            stdin: Stdin::Null,
            output: Sink::Null,
            group: true,
        };
        let t = Instant::now();
        let o = exec(&spec, Instant::now() + Duration::from_millis(300)).unwrap();
        assert!(o.timed_out && !o.survivors, "{o:?}");
        assert!(t.elapsed() < GRACE + Duration::from_secs(3));
        assert_eq!(which("sh", "/nonexistent:/bin").as_deref(), Some("/bin/sh"));
        assert_eq!(which("/x/y", "").as_deref(), Some("/x/y"));
        assert_eq!(which("no-such-program-here", "/bin:/usr/bin"), None);
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
