//! `preroot apply`, `status` and `clean` on root trees in temp dirs. The roots hold Debian's
//! static busybox as `/bin/sh` (and its applets: `adduser`, `chpasswd`), a `useradd` and a
//! `groupadd` that call busybox's, and a stand-in `ssh-keygen`; every program runs chrooted
//! into the tree, so these tests need root and `busybox` (`busybox-static`).

mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

fn preroot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .output()
        .expect("run preroot")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(path: &Path, data: impl AsRef<[u8]>, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .into_owned()
}

/// A minimal system root: busybox, passwd/group/shadow, useradd/groupadd/ssh-keygen stand-ins.
fn make_root(root: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc/ssh", "root", "home", "tmp", "var/log",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    // Another test thread may fork while our copy's write descriptor is still open; its child
    // holds it until exec, and running the copy then fails with ETXTBSY. Retry briefly.
    let mut ok = false;
    for _ in 0..20 {
        let st = Command::new("chroot")
            .arg(root)
            .args(["/bin/busybox", "--install", "-s"])
            .status()
            .unwrap();
        if st.success() {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ok, "busybox --install");
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(&root.join("etc/group"), "root:x:0:\nadm:x:4:\n", 0o644);
    write(
        &root.join("etc/shadow"),
        "root:*:19000:0:99999:7:::\n",
        0o640,
    );
    // Debian's busybox-static has no adduser/chpasswd: shell stand-ins for shadow's tools,
    // called exactly as preroot calls the real ones.
    write(
        &root.join("usr/sbin/useradd"),
        "#!/bin/sh\n# useradd -m -s SHELL [-G GROUPS] NAME\n\
         shell=/bin/sh\nwhile [ $# -gt 1 ]; do case \"$1\" in -s) shell=$2; shift;; -G) shift;; esac; shift; done\n\
         id=$((999 + $(wc -l < /etc/passwd)))\n\
         echo \"$1:x:$id:$id::/home/$1:$shell\" >> /etc/passwd\n\
         echo \"$1:x:$id:\" >> /etc/group\n\
         echo \"$1:!:19000:0:99999:7:::\" >> /etc/shadow\n\
         mkdir -p /home/$1 && chown $id:$id /home/$1 && chmod 0750 /home/$1\n",
        0o755,
    );
    write(
        &root.join("usr/sbin/groupadd"),
        "#!/bin/sh\necho \"$1:x:$((2000 + $(wc -l < /etc/group))):\" >> /etc/group\n",
        0o755,
    );
    write(
        &root.join("usr/sbin/chpasswd"),
        "#!/bin/sh\n# chpasswd -e: USER:HASH lines on stdin\n[ \"$1\" = -e ] || exit 2\n\
         while IFS=: read -r user hash; do\n\
         grep -q \"^$user:\" /etc/shadow || exit 1\n\
         sed -i \"s|^$user:[^:]*:|$user:$hash:|\" /etc/shadow\ndone\n",
        0o755,
    );
    // The Heat fixture's boothook is a bash script.
    write(
        &root.join("bin/bash"),
        "#!/bin/sh\nexec /bin/sh \"$@\"\n",
        0o755,
    );
    write(
        &root.join("usr/bin/ssh-keygen"),
        "#!/bin/sh\n# stand-in: -A makes fake host keys, -l prints a fake fingerprint\n\
         case \"$1\" in\n-A) for t in rsa ed25519; do echo \"fake $t\" > /etc/ssh/ssh_host_${t}_key; \
         echo \"ssh-$t FAKE-$$\" > /etc/ssh/ssh_host_${t}_key.pub; done;;\n\
         -l) echo \"256 SHA256:fake $3\";;\nesac\n",
        0o755,
    );
    write(
        &root.join("etc/ssh/ssh_host_rsa_key"),
        "old image key\n",
        0o600,
    );
}

/// A state directory with a context and its secrets, as the initramfs leaves it.
fn make_state(state: &Path, id: &str, user_data: Option<&[u8]>, vendor: Option<&[u8]>) {
    fs::create_dir_all(state).unwrap();
    let mut ctx = json!({
        "schema_version": 1,
        "platform": "openstack",
        "source": {"kind": "config-drive", "medium": "directory", "location": "test"},
        "instance_id": id,
        "hostname": "vm1",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeta meta@key"],
        "errors": [],
        "fallbacks": [],
        "extra": {}
    });
    for (name, data) in [("user_data", user_data), ("vendor_data", vendor)] {
        if let Some(data) = data {
            let file = state.join(name.replace('_', "-"));
            write(&file, data, 0o600);
            ctx[name] =
                json!({"path": file.to_str().unwrap(), "size": data.len(), "type": "other"});
        }
    }
    fs::write(
        state.join("context.json"),
        serde_json::to_vec(&ctx).unwrap(),
    )
    .unwrap();
}

fn apply(root: &Path, state: &Path) -> Output {
    preroot(&[
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

fn status_json(state: &Path) -> Value {
    let out = preroot(&["status", "--json", "--state-dir", state.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// Heat's cfn-tools user data: the files in /var/lib/heat-cfntools (0700), cfn-userdata run
/// once with its log and provision-finished; the metadata key added beside the key that was
/// there; host keys regenerated once; nothing re-runs at the next boot; a new id runs again.
#[test]
fn heat_user_data_and_keys_once_per_instance() {
    require!("heat_user_data_and_keys_once_per_instance"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-heat");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    // The default user exists with a key of its own, which must stay.
    let mut passwd = read(&root.join("etc/passwd"));
    passwd.push_str("cloud-user:x:1000:1000::/home/cloud-user:/bin/sh\n");
    write(&root.join("etc/passwd"), passwd, 0o644);
    write(
        &root.join("home/cloud-user/.ssh/authorized_keys"),
        "ssh-rsa AAAAOLD old@key\n",
        0o644,
    );
    let heat = fs::read(
        common::fixtures().join("multipart/heat-cfntools/input/openstack/latest/user_data"),
    )
    .unwrap();
    make_state(&state, "i-heat-1", Some(&heat), None);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BEGIN SSH HOST KEY FINGERPRINTS") && stdout.contains("SHA256:fake"),
        "{}",
        text(&out)
    );
    assert_eq!(read(&root.join("etc/ssh/ssh_host_rsa_key")), "fake rsa\n");

    let heat_dir = root.join("var/lib/heat-cfntools");
    assert_eq!(mode(&heat_dir), 0o700);
    for f in [
        "cfn-userdata",
        "cfn-init-data",
        "cfn-metadata-server",
        "cfn-boto-cfg",
    ] {
        assert!(heat_dir.join(f).is_file(), "{f}");
    }
    assert_eq!(mode(&heat_dir.join("cfn-userdata")), 0o700);
    assert_eq!(
        read(&heat_dir.join("cfn-metadata-server")),
        "http://server.test:123/v1/"
    );
    assert!(heat_dir.join("provision-finished").is_file());
    assert_eq!(
        read(&root.join("var/log/heat-provision.log")),
        "user script\n"
    );
    assert_eq!(mode(&root.join("var/log/heat-provision.log")), 0o600);
    // Heat's own runner script is not run: preroot ran cfn-userdata itself.
    let log = fs::read_to_string(root.join("var/log/preroot-user-data.log")).unwrap_or_default();
    assert!(!log.contains("loguserdata"), "{log}");

    let ssh = root.join("home/cloud-user/.ssh");
    assert_eq!(
        read(&ssh.join("authorized_keys")),
        "ssh-rsa AAAAOLD old@key\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeta meta@key\n"
    );
    assert_eq!(mode(&ssh), 0o700);
    assert_eq!(mode(&ssh.join("authorized_keys")), 0o600);
    let meta = fs::metadata(ssh.join("authorized_keys")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));

    let st = status_json(&state);
    assert_eq!(st["stage"], "done");
    assert_eq!(st["new_instance"], true);
    let ignored = st["ignored"].to_string();
    assert!(ignored.contains("cloud-config key output"), "{ignored}");
    assert!(ignored.contains("text/part-handler"), "{ignored}");

    // Next boot: nothing once-per-instance runs again.
    let keys_before = read(&root.join("etc/ssh/ssh_host_rsa_key.pub"));
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        read(&root.join("var/log/heat-provision.log")),
        "user script\n"
    );
    assert_eq!(
        read(&root.join("etc/ssh/ssh_host_rsa_key.pub")),
        keys_before
    );
    assert_eq!(status_json(&state)["new_instance"], false);

    // A new instance id: everything again.
    make_state(&state, "i-heat-2", Some(&heat), None);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        read(&root.join("var/log/heat-provision.log")),
        "user script\nuser script\n"
    );
    assert_ne!(
        read(&root.join("etc/ssh/ssh_host_rsa_key.pub")),
        keys_before
    );
}

/// An ostree system's layout (`/home -> var/home`, `/root -> var/roothome`, as
/// `qemu/ostree.sh` and Fedora CoreOS have it): the ssh keys land in the home under
/// `var/home`, since the links above a home are the system's; a link that *is* a user's home
/// (the user's own) is still not followed. Found by the QEMU ostree boot, where apply failed
/// with "/home: is a symlink".
#[test]
fn keys_through_an_ostree_home_link() {
    require!("keys_through_an_ostree_home_link"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-ostree-home");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    for (link, dir) in [("home", "var/home"), ("root", "var/roothome")] {
        fs::remove_dir_all(root.join(link)).unwrap();
        fs::create_dir_all(root.join(dir)).unwrap();
        std::os::unix::fs::symlink(dir, root.join(link)).unwrap();
    }
    let mut passwd = read(&root.join("etc/passwd"));
    passwd.push_str("cloud-user:x:1000:1000::/home/cloud-user:/bin/sh\n");
    passwd.push_str("eve:x:1001:1001::/home/eve:/bin/sh\n");
    write(&root.join("etc/passwd"), passwd, 0o644);
    fs::create_dir_all(root.join("var/home/cloud-user")).unwrap();
    // eve's home is a link out of the homes: her keys must not follow it.
    std::os::unix::fs::symlink("/etc", root.join("var/home/eve")).unwrap();
    let user = b"#cloud-config\nusers:\n  - default\n  - name: eve\n    ssh_authorized_keys: [ssh-ed25519 AAAAEVE eve@key]\n";
    make_state(&state, "i-ostree-1", Some(user), None);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "eve's home: {}", text(&out));
    assert_eq!(
        read(&root.join("var/home/cloud-user/.ssh/authorized_keys")),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeta meta@key\n",
        "{}",
        text(&out)
    );
    assert_eq!(mode(&root.join("var/home/cloud-user/.ssh")), 0o700);
    assert!(
        !root.join("etc/.ssh").exists(),
        "followed eve's home link: {}",
        text(&out)
    );
    let errors = status_json(&state)["errors"].to_string();
    assert!(
        errors.contains("var/home/eve/.ssh/authorized_keys") && !errors.contains("/home: is a"),
        "{errors}"
    );

    // `clean --homes` finds the homes through the same links.
    write(&root.join("var/roothome/.bash_history"), "ls\n", 0o600);
    let out = preroot(&["clean", "--homes", "--root", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !root
            .join("var/home/cloud-user/.ssh/authorized_keys")
            .exists()
            && !root.join("var/roothome/.bash_history").exists(),
        "clean --homes through the links: {}",
        text(&out)
    );
    assert!(root.join("etc/passwd").exists() && root.join("home").is_symlink());
}

const CLOUD_CONFIG: &str = "#cloud-config
users:
  - default
  - name: bob
    groups: [adm]
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys: [ssh-ed25519 AAAABOB bob@key]
write_files:
  - path: /etc/motd
    content: aGVsbG8K
    encoding: b64
    permissions: '0600'
    owner: bob:bob
  - path: /opt/app/app.conf
    content: x=1
runcmd:
  - echo runcmd >> /root/runcmd-count
  - [sh, -c, \"echo 'quoted arg' > /root/argv\"]
bootcmd:
  - echo boot >> /root/boot-count
hostname: web1
password: hunter2-secret
packages: [nginx]
vendor_data: {enabled: false}
";

fn multipart(parts: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut s =
        String::from("Content-Type: multipart/mixed; boundary=\"BOUND\"\nMIME-Version: 1.0\n\n");
    for (ctype, name, body) in parts {
        s.push_str(&format!(
            "--BOUND\nContent-Type: {ctype}; charset=\"us-ascii\"\nContent-Disposition: attachment; filename=\"{name}\"\n\n{body}\n"
        ));
    }
    s.push_str("--BOUND--\n");
    s.into_bytes()
}

/// Cloud-config users, sudo, write_files, runcmd, bootcmd, hostname and a password, a
/// failing script with its exit status recorded, vendor data turned off by user data.
#[test]
fn cloud_config_scripts_and_passwords() {
    require!("cloud_config_scripts_and_passwords"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-cc");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    let user = multipart(&[
        ("text/cloud-config", "cc.yaml", CLOUD_CONFIG),
        (
            "text/x-shellscript",
            "fail.sh",
            "#!/bin/sh\necho script output\necho script stderr >&2\nexit 3",
        ),
    ]);
    let vendor = b"#!/bin/sh\ntouch /root/vendor-ran\n";
    // An absolute link inside the root: write_files follows it as the booted system would.
    fs::create_dir_all(root.join("srv/app")).unwrap();
    std::os::unix::fs::symlink("/srv", root.join("opt")).unwrap();
    make_state(&state, "i-cc-1", Some(&user), Some(vendor));
    let out = apply(&root, &state);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failing script: {}",
        text(&out)
    );
    assert!(text(&out).contains("exit status 3"), "{}", text(&out));
    assert!(
        !root.join("root/vendor-ran").exists(),
        "vendor data disabled"
    );

    let passwd = read(&root.join("etc/passwd"));
    assert!(
        passwd.contains("\nbob:") && passwd.contains("\ncloud-user:"),
        "{passwd}"
    );
    let shadow = read(&root.join("etc/shadow"));
    assert!(shadow.contains("\ncloud-user:$6$"), "{shadow}");
    assert_eq!(mode(&root.join("etc/shadow")), 0o640);
    assert_eq!(
        read(&root.join("home/bob/.ssh/authorized_keys")),
        "ssh-ed25519 AAAABOB bob@key\n"
    );
    let sudoers = root.join("etc/sudoers.d/90-preroot-users");
    assert_eq!(mode(&sudoers), 0o440);
    let sudo = read(&sudoers);
    assert!(
        sudo.contains("bob ALL=(ALL) NOPASSWD:ALL") && sudo.contains("cloud-user ALL"),
        "{sudo}"
    );
    assert_eq!(read(&root.join("etc/motd")), "hello\n");
    assert_eq!(mode(&root.join("etc/motd")), 0o600);
    let bob_uid = fs::metadata(root.join("home/bob")).unwrap().uid();
    assert_eq!(fs::metadata(root.join("etc/motd")).unwrap().uid(), bob_uid);
    assert_eq!(read(&root.join("srv/app/app.conf")), "x=1");
    assert_eq!(read(&root.join("etc/hostname")), "web1\n");
    assert_eq!(read(&root.join("root/runcmd-count")), "runcmd\n");
    assert_eq!(read(&root.join("root/argv")), "quoted arg\n");
    assert_eq!(read(&root.join("root/boot-count")), "boot\n");
    let log = read(&root.join("var/log/preroot-user-data.log"));
    assert!(
        log.contains("script output") && log.contains("script stderr"),
        "{log}"
    );
    assert_eq!(mode(&root.join("var/log/preroot-user-data.log")), 0o600);

    let st = status_json(&state);
    let steps = st["steps"].to_string();
    assert!(steps.contains("exit 3"), "{steps}");
    assert!(st["ignored"].to_string().contains("key packages"), "{st}");
    // The password is nowhere but hashed in shadow: not in status, logs or output.
    for (what, s) in [
        ("status", st.to_string()),
        ("log", log.clone()),
        ("output", text(&out)),
        ("instance state", walk_text(&root.join("var/lib/preroot"))),
    ] {
        assert!(!s.contains("hunter2-secret"), "password in {what}");
    }

    // Next boot: bootcmd again, nothing else.
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&root.join("root/boot-count")), "boot\nboot\n");
    assert_eq!(read(&root.join("root/runcmd-count")), "runcmd\n");
    assert_eq!(read(&root.join("var/log/preroot-user-data.log")), log);
}

/// Is process `pid` gone (or a zombie waiting to be reaped)?
fn dead(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// `script_timeout`: a script still running at its deadline is stopped with its whole
/// process group, so a background child it started (which would write a file later) dies
/// too, even though the script itself ignores SIGTERM (SIGKILL follows the grace). A script
/// that exits by itself keeps the daemon it started: only the deadline kills.
#[test]
fn script_timeout_kills_the_process_group() {
    require!("script_timeout_kills_the_process_group"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-timeout");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    write(
        &root.join("etc/preroot/preroot.conf"),
        "script_timeout = 2\nssh_host_keys = keep\n",
        0o644,
    );
    // The shell gives background jobs /dev/null as stdin.
    fs::create_dir_all(root.join("dev")).unwrap();
    let st = Command::new("mknod")
        .arg(root.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod dev/null");
    let user = multipart(&[
        (
            "text/x-shellscript",
            "daemon.sh",
            "#!/bin/sh\n(sleep 4; touch /tmp/daemon-ran) &\necho $! > /tmp/daemon-pid\nexit 0",
        ),
        (
            "text/x-shellscript",
            "hang.sh",
            "#!/bin/sh\n(sleep 8; touch /tmp/late-child) &\necho $! > /tmp/child-pid\n\
             trap '' TERM\nsleep 60",
        ),
    ]);
    make_state(&state, "i-timeout", Some(&user), None);
    let t = std::time::Instant::now();
    let out = apply(&root, &state);
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the hung script is an error; {}",
        text(&out)
    );
    // Deadline 2 s, SIGTERM ignored, SIGKILL after the 2 s grace.
    assert!(
        took >= std::time::Duration::from_secs(4) && took < std::time::Duration::from_secs(15),
        "apply took {took:?}"
    );
    let st = status_json(&state);
    assert!(
        st["errors"]
            .to_string()
            .contains("killed with its process group after 2 s"),
        "{st}"
    );
    let child: u32 = read(&root.join("tmp/child-pid")).trim().parse().unwrap();
    assert!(
        dead(child),
        "the hung script's background child {child} is alive"
    );
    // The daemon of the script that exited by itself was left alone and did its job.
    let daemon: u32 = read(&root.join("tmp/daemon-pid")).trim().parse().unwrap();
    while t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        root.join("tmp/daemon-ran").exists(),
        "the daemon {daemon} of a script that exited by itself was killed"
    );
    // 10 s after the start: the killed child would have written its file at 8 s.
    assert!(
        !root.join("tmp/late-child").exists(),
        "the killed script's child ran on after apply returned"
    );
}

/// Every file's content under `dir`, concatenated.
fn walk_text(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                s.push_str(&walk_text(&p));
            } else {
                s.push_str(&String::from_utf8_lossy(&fs::read(&p).unwrap_or_default()));
            }
        }
    }
    s
}

/// Heat parts whose names would leave /var/lib/heat-cfntools are refused, and nothing lands
/// outside it.
#[test]
fn cfn_part_names_are_checked() {
    require!("cfn_part_names_are_checked"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-cfn");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    let shadow = read(&root.join("etc/shadow"));
    let user = multipart(&[
        ("text/x-cfninitdata", "../../etc/shadow", "owned::0:0:::::"),
        ("text/x-cfninitdata", "a/b", "x"),
        ("text/x-cfninitdata", "cfn-init-data", "{}"),
    ]);
    make_state(&state, "i-cfn", Some(&user), None);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("../../etc/shadow") && err.contains("a/b"),
        "{err}"
    );
    let after = read(&root.join("etc/shadow"));
    assert!(
        after.starts_with(&shadow) && !after.contains("owned"),
        "{after}"
    );
    assert!(!root.join("var/lib/heat-cfntools/a").exists());
    assert_eq!(
        read(&root.join("var/lib/heat-cfntools/cfn-init-data")),
        "{}"
    );
    assert!(!root
        .join("var/lib/heat-cfntools/provision-finished")
        .exists());
}

/// `status` before apply ran: exit 3; `--wait` gives up at its timeout.
#[test]
fn status_before_apply() {
    let tmp = TempDir::new("status");
    let state = tmp.path().to_str().unwrap();
    let out = preroot(&["status", "--state-dir", state]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("no context"), "{}", text(&out));
    // No context: nothing will ever run, --wait does not wait.
    let t = std::time::Instant::now();
    let out = preroot(&["status", "--wait", "--timeout", "30", "--state-dir", state]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    // A context but no apply yet: --wait gives up at its timeout.
    fs::write(tmp.path().join("context.json"), "{}").unwrap();
    let t = std::time::Instant::now();
    let out = preroot(&["status", "--wait", "--timeout", "1", "--state-dir", state]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));
    let out = preroot(&["status", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `clean` re-arms a root: instance state, manifest files, machine-id, hand-off files and
/// logs (truncated, modes kept); host keys and homes only with their flags; `--dry-run`
/// changes nothing.
#[test]
fn clean_rearms_a_root() {
    let tmp = TempDir::new("clean");
    let root = tmp.path();
    write(
        &root.join("etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
        0o444,
    );
    // D-Bus's copy as a file (systemd copies it into an empty /etc/machine-id).
    write(
        &root.join("var/lib/dbus/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
        0o444,
    );
    write(&root.join("etc/hostname"), "vm1\n", 0o644);
    write(
        &root.join("etc/hosts"),
        "127.0.0.1 localhost\n127.0.1.1 vm1.example vm1 # preroot\n",
        0o644,
    );
    write(
        &root.join("etc/systemd/network/10-preroot-eth0.network"),
        "[Match]\n",
        0o644,
    );
    write(
        &root.join("etc/sysconfig/network-scripts/ifcfg-eth0"),
        "DEVICE=eth0\n",
        0o644,
    );
    write(
        &root.join("etc/sysconfig/network-scripts/ifcfg-eth0.preroot-orig"),
        "IMAGE\n",
        0o644,
    );
    write(
        &root.join("etc/preroot/manifest.json"),
        serde_json::to_vec(&json!({
            "instance_id": "i-1", "renderer": "networkd",
            "files": ["etc/systemd/network/10-preroot-eth0.network",
                      "etc/sysconfig/network-scripts/ifcfg-eth0", "etc/hostname", "etc/hosts"],
            "moved_aside": ["etc/sysconfig/network-scripts/ifcfg-eth0"]
        }))
        .unwrap(),
        0o644,
    );
    write(&root.join("etc/preroot/instance-id"), "i-1\n", 0o644);
    write(
        &root.join("etc/preroot/preroot.conf"),
        "default_user = debian\n",
        0o644,
    );
    write(&root.join("var/lib/preroot/instances/i-1/done"), "", 0o644);
    write(
        &root.join("var/lib/heat-cfntools/cfn-init-data"),
        "{\"password\": 1}",
        0o600,
    );
    write(
        &root.join("var/lib/cloud/seed/nocloud/meta-data"),
        "instance-id: i-1\n",
        0o600,
    );
    write(&root.join("var/log/syslog"), "lots\n", 0o640);
    write(&root.join("var/log/apt/history.log"), "x\n", 0o644);
    write(
        &root.join("var/log/journal/abc/system.journal"),
        "binary",
        0o640,
    );
    write(&root.join("etc/ssh/ssh_host_ed25519_key"), "k", 0o600);
    write(
        &root.join("home/bob/.ssh/authorized_keys"),
        "ssh-rsa A\n",
        0o600,
    );

    let before = common::snapshot(root);
    let out = preroot(&[
        "clean",
        "--dry-run",
        "--ssh-host-keys",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("would truncate /var/log/syslog"),
        "{}",
        text(&out)
    );
    assert_eq!(common::snapshot(root), before, "--dry-run changed the tree");

    let out = preroot(&["clean", "--root", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&root.join("etc/machine-id")), "");
    assert_eq!(mode(&root.join("etc/machine-id")), 0o444);
    assert!(!root.join("var/lib/dbus/machine-id").exists());
    assert_eq!(read(&root.join("etc/hosts")), "127.0.0.1 localhost\n");
    assert!(!root.join("etc/hostname").exists());
    assert!(!root
        .join("etc/systemd/network/10-preroot-eth0.network")
        .exists());
    assert_eq!(
        read(&root.join("etc/sysconfig/network-scripts/ifcfg-eth0")),
        "IMAGE\n",
        "the image's file is back"
    );
    assert!(!root.join("etc/preroot/manifest.json").exists());
    assert!(!root.join("etc/preroot/instance-id").exists());
    assert!(root.join("etc/preroot/preroot.conf").exists());
    assert!(!root.join("var/lib/preroot").exists());
    assert!(!root.join("var/lib/heat-cfntools").exists());
    assert!(!root.join("var/lib/cloud/seed/nocloud").exists());
    assert_eq!(read(&root.join("var/log/syslog")), "");
    assert_eq!(mode(&root.join("var/log/syslog")), 0o640);
    assert_eq!(read(&root.join("var/log/apt/history.log")), "");
    assert_eq!(
        read(&root.join("var/log/journal/abc/system.journal")),
        "binary"
    );
    assert!(
        root.join("etc/ssh/ssh_host_ed25519_key").exists(),
        "no --ssh-host-keys"
    );
    assert!(
        root.join("home/bob/.ssh/authorized_keys").exists(),
        "no --homes"
    );

    let out = preroot(&[
        "clean",
        "--ssh-host-keys",
        "--homes",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!root.join("home/bob/.ssh/authorized_keys").exists());
    assert!(root.join("home/bob/.ssh").is_dir());
}

/// An image that keeps cloud-init: apply writes the NoCloud seed and the drop-in, and leaves
/// users and user data to cloud-init; `handoff = none` in preroot.conf turns that off.
#[test]
fn cloud_init_handoff() {
    let tmp = TempDir::new("apply-ci");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(
        &root.join("usr/bin/cloud-init"),
        "#!/usr/bin/python3\n",
        0o755,
    );
    let user = b"#cloud-config\npackages: [nginx]\n";
    make_state(&state, "i-ci-1", Some(user), None);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seed = root.join("var/lib/cloud/seed/nocloud");
    let meta: Value = serde_json::from_slice(&fs::read(seed.join("meta-data")).unwrap()).unwrap();
    assert_eq!(meta["instance-id"], "i-ci-1");
    assert_eq!(meta["local-hostname"], "vm1");
    assert_eq!(
        meta["public-keys"][0],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeta meta@key"
    );
    assert_eq!(fs::read(seed.join("user-data")).unwrap(), user);
    assert_eq!(mode(&seed.join("user-data")), 0o600);
    assert_eq!(read(&seed.join("network-config")), "config: disabled\n");
    let dropin = read(&root.join("etc/cloud/cloud.cfg.d/99-preroot.cfg"));
    assert!(
        dropin.contains("datasource_list: [ NoCloud, None ]"),
        "{dropin}"
    );
    assert!(dropin.contains("network: {config: disabled}"), "{dropin}");
    assert!(
        !read(&root.join("etc/passwd")).contains("cloud-user"),
        "left to cloud-init"
    );
    let st = status_json(&state);
    assert!(st["steps"].to_string().contains("cloud-init"), "{st}");
    assert_eq!(st["ignored"], json!([]));

    // Turned off in preroot.conf: preroot applies itself (here: only reports, as the tree
    // has no programs to run and user data only asks for packages).
    let tmp2 = TempDir::new("apply-ci-off");
    let (root2, state2) = (tmp2.path().join("root"), tmp2.path().join("state"));
    write(
        &root2.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(
        &root2.join("usr/bin/cloud-init"),
        "#!/usr/bin/python3\n",
        0o755,
    );
    write(
        &root2.join("etc/preroot/preroot.conf"),
        "handoff = none\nssh_host_keys = keep\n",
        0o644,
    );
    make_state(&state2, "i-ci-2", Some(user), None);
    let _ = apply(&root2, &state2);
    assert!(!root2.join("var/lib/cloud/seed/nocloud").exists());
    assert!(status_json(&state2)["ignored"]
        .to_string()
        .contains("key packages"));
}

/// preroot-apply.service passes systemd's checker (ExecStart pointed at the test binary) and
/// keeps its ordering: after the network, before sshd and logins.
#[test]
fn apply_unit_verifies() {
    require!("apply_unit_verifies"; "systemd-analyze");
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/preroot-apply.service");
    let text = read(&unit);
    for line in [
        "After=network-online.target",
        "Before=ssh.service sshd.service systemd-user-sessions.service",
        "ExecStart=/usr/bin/preroot apply",
        "TimeoutStartSec=",
    ] {
        assert!(text.contains(line), "{line}");
    }
    let tmp = TempDir::new("apply-unit");
    let copy = tmp.path().join("preroot-apply.service");
    fs::write(
        &copy,
        text.replace("/usr/bin/preroot", env!("CARGO_BIN_EXE_preroot")),
    )
    .unwrap();
    // --man=no: the unit's Documentation= names preroot(8), which the host that runs the
    // tests has not installed.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

/// Every file under `dir` (relative paths), not following links.
fn files_under(dir: &Path, skip: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A root and a state for one issue-16 case: `conf` as preroot.conf (host keys kept, so no
/// ssh-keygen), `user` as user data.
fn case_root(
    tag: &str,
    conf: &str,
    user: &[u8],
) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = TempDir::new(tag);
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    write(
        &root.join("etc/preroot/preroot.conf"),
        format!("ssh_host_keys = keep\n{conf}"),
        0o644,
    );
    make_state(&state, &format!("i-{tag}"), Some(user), None);
    (tmp, root, state)
}

/// Issue 16 item 10: a sudo rule ending in `\` (sudoers' line continuation) would join the
/// next user's rule to it and can break sudo for everyone: refused by name, the rest written,
/// and the file parses for the host's `visudo -cf`. A root that has visudo gets the file
/// checked by it first: a file it refuses is not put into place.
#[test]
fn sudo_rules_cannot_run_into_the_next_line() {
    require!("sudo_rules_cannot_run_into_the_next_line"; root, "busybox", "chroot", "visudo");
    let cc = "#cloud-config\nusers:\n  - {name: alice, sudo: \"ALL=(ALL) ALL \\\\\"}\n  \
              - {name: bob, sudo: \"ALL=(ALL) NOPASSWD:ALL\"}\n  - {name: carol, sudo: \"ALL=(ALL) FROB:ALL\"}\n";
    let (_tmp, root, state) = case_root("apply-sudo", "default_user_sudo = none\n", cc.as_bytes());
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let errors = status_json(&state)["errors"].to_string();
    assert!(
        errors.contains("users[alice].sudo: sudo rule") && errors.contains("ends with a backslash"),
        "{errors}"
    );
    let sudoers = root.join("etc/sudoers.d/90-preroot-users");
    let written = read(&sudoers);
    assert!(
        !written.contains("alice") && written.contains("bob ALL=(ALL) NOPASSWD:ALL\n"),
        "{written}"
    );
    let check = Command::new("visudo")
        .arg("-cf")
        .arg(&sudoers)
        .output()
        .unwrap();
    // carol's unknown tag passes preroot's own check; visudo (absent in this root) would
    // refuse the file, as the host's says.
    assert!(!check.status.success(), "host visudo: {}", text(&check));
    // The same with visudo in the root (a stand-in that refuses what the host's refuses).
    let (_tmp, root, state) =
        case_root("apply-sudo-v", "default_user_sudo = none\n", cc.as_bytes());
    write(
        &root.join("usr/sbin/visudo"),
        "#!/bin/sh\n# visudo -c -q -f FILE\nif grep -q FROB: \"$4\"; then echo \"$4:4:24: syntax error\" >&2; exit 1; fi\n",
        0o755,
    );
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let errors = status_json(&state)["errors"].to_string();
    assert!(errors.contains("visudo -c refused it (exit 1"), "{errors}");
    assert!(
        !root.join("etc/sudoers.d/90-preroot-users").exists(),
        "a refused file was put into place"
    );
    assert!(
        fs::read_dir(root.join("etc/sudoers.d"))
            .unwrap()
            .next()
            .is_none(),
        "the check copy is removed"
    );
    // Without carol, the host's visudo accepts what apply wrote.
    let cc = cc.replace("  - {name: carol, sudo: \"ALL=(ALL) FROB:ALL\"}\n", "");
    let (_tmp, root, state) = case_root("apply-sudo-ok", "", cc.as_bytes());
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "alice's rule: {}", text(&out));
    let sudoers = root.join("etc/sudoers.d/90-preroot-users");
    let check = Command::new("visudo")
        .arg("-cf")
        .arg(&sudoers)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "host visudo on {}: {}",
        read(&sudoers),
        text(&check)
    );
}

/// Issue 16 item 11: `append: true` on a file over the 1 MiB read cap used to replace it with
/// the appended bytes (the cap's error read as an empty file). It is appended to in place.
#[test]
fn append_never_replaces_a_big_file() {
    require!("append_never_replaces_a_big_file"; root, "busybox", "chroot");
    let cc = "#cloud-config\nwrite_files:\n  - {path: /etc/big, content: \"appended\\n\", append: true, permissions: '0640'}\n  \
              - {path: /etc/new, content: \"fresh\\n\", append: true}\n";
    let (_tmp, root, state) = case_root("apply-append", "", cc.as_bytes());
    let big: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    write(&root.join("etc/big"), &big, 0o644);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = fs::read(root.join("etc/big")).unwrap();
    assert_eq!(after.len(), 2_000_009);
    assert!(after.starts_with(&big) && after.ends_with(b"appended\n"));
    assert_eq!(mode(&root.join("etc/big")), 0o640);
    assert_eq!(read(&root.join("etc/new")), "fresh\n");
}

/// Issues 16 items 12 and 13: a multipart whose boundary no delimiter carries, and one cut
/// inside its last part (no close delimiter), are errors in status; nothing of either runs
/// (before: the first was dropped silently, the second ran the half script).
#[test]
fn cut_or_lost_multipart_runs_nothing_and_says_so() {
    require!("cut_or_lost_multipart_runs_nothing_and_says_so"; root, "busybox", "chroot");
    for (case, doc, why) in [
        (
            "lost boundary",
            "Content-Type: multipart/mixed; boundary=\"===123456789==\"\nMIME-Version: 1.0\n\n\
             --===1234\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntouch /root/ran\n--===1234--\n",
            "multipart boundary \\\"===123456789==\\\" is on no delimiter line",
        ),
        (
            "cut document",
            "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n\
             --B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntouch /root/ran\n\
             --B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho started >> /root/x\necho fin",
            "multipart ends without its close delimiter \\\"--B--\\\"",
        ),
    ] {
        let (_tmp, root, state) = case_root("apply-mime", "", doc.as_bytes());
        let out = apply(&root, &state);
        assert_eq!(out.status.code(), Some(1), "case {case}: {}", text(&out));
        let st = status_json(&state);
        assert!(st["errors"].to_string().contains(why), "case {case}: {st}");
        assert!(!root.join("root/ran").exists() && !root.join("root/x").exists(), "case {case}: a script ran");
        let status = preroot(&["status", "--state-dir", state.to_str().unwrap()]);
        assert_eq!(status.status.code(), Some(1), "case {case}: {}", text(&status));
    }
}

/// Issue 16 item 14: `script_timeout = 18446744073709551615` aborted apply with exit 134
/// (adding it to an `Instant` overflowed); it is a wait that saturates.
#[test]
fn largest_script_timeout_does_not_abort() {
    require!("largest_script_timeout_does_not_abort"; root, "busybox", "chroot");
    let (_tmp, root, state) = case_root(
        "apply-huge-timeout",
        "script_timeout = 18446744073709551615\n",
        b"#!/bin/sh\ntouch /root/ran\n",
    );
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(root.join("root/ran").exists());
}

/// Issue 16 item 17: `apply --root rel/root` ran every program as `chroot rel/root …` from
/// `/`, where that path is something else (exit status 125 each); the root is made absolute.
#[test]
fn relative_root_works() {
    require!("relative_root_works"; root, "busybox", "chroot");
    let (tmp, root, state) = case_root("apply-relative", "", b"#!/bin/sh\ntouch /root/ran\n");
    assert!(root.starts_with(tmp.path()));
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args([
            "apply",
            "--root",
            "root",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(root.join("root/ran").exists());
    assert!(read(&root.join("etc/passwd")).contains("\ncloud-user:"));
}

/// Issue 16 item 18: an `/etc/passwd` over 1 MiB was read as empty: the existing user was not
/// found, useradd ran again and the error blamed it. It is streamed whole.
#[test]
fn big_passwd_is_read_whole() {
    require!("big_passwd_is_read_whole"; root, "busybox", "chroot");
    let (_tmp, root, state) = case_root("apply-big-passwd", "", b"");
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    for i in 0..30_000 {
        passwd.push_str(&format!(
            "svc{i}:x:{}:{}::/nonexistent:/bin/false\n",
            40_000 + i,
            40_000 + i
        ));
    }
    passwd.push_str("cloud-user:x:1000:1000::/home/cloud-user:/bin/sh\n");
    assert!(passwd.len() > 1 << 20);
    write(&root.join("etc/passwd"), &passwd, 0o644);
    fs::create_dir_all(root.join("home/cloud-user")).unwrap();
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&root.join("etc/passwd")), passwd, "useradd ran again");
    assert!(read(&root.join("home/cloud-user/.ssh/authorized_keys")).contains("meta@key"));
}

/// Issue 16 item 19: a cloud-config key string holding two keys (a newline between them) was
/// dropped with no message; it is split, and a key with another control character is
/// refused by name.
#[test]
fn keys_with_a_newline_are_split_or_refused() {
    require!("keys_with_a_newline_are_split_or_refused"; root, "busybox", "chroot");
    let cc = "#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAone one@key\\nssh-ed25519 AAAAtwo two@key\"\n  \
              - \"ssh-rsa AAAAthree\\rthree@key\"\n";
    let (_tmp, root, state) = case_root("apply-keys", "", cc.as_bytes());
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let keys = read(&root.join("home/cloud-user/.ssh/authorized_keys"));
    assert!(
        keys.contains("one@key\n") && keys.contains("two@key\n"),
        "{keys}"
    );
    assert!(!keys.contains("three"), "{keys}");
    let errors = status_json(&state)["errors"].to_string();
    assert!(
        errors.contains(r#"ssh_authorized_keys: key \"ssh-rsa AAAAthree\\rthree@key\" refused"#),
        "{errors}"
    );
}

/// Issue 16 item 22: a refused `permissions` says why, and the `write-files` step counts what
/// was written, not what was asked (it said `6 files` when 3 of the 6 were refused).
#[test]
fn write_files_step_counts_what_was_written() {
    require!("write_files_step_counts_what_was_written"; root, "busybox", "chroot");
    let cc = "#cloud-config\nwrite_files:\n  - {path: /etc/a, content: a}\n  - {path: /etc/b, content: b}\n  \
              - {path: /etc/c, content: c}\n  - {path: /etc/d, content: d, permissions: '0o17777'}\n  \
              - {path: etc/e, content: e}\n  - {path: /linked/f, content: f}\n";
    let (tmp, root, state) = case_root("apply-wf-count", "", cc.as_bytes());
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let st = status_json(&state);
    let step = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "write-files")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        step["outcome"], "3 of 6 files written, 3 refused (see errors)",
        "{st}"
    );
    let errors = st["errors"].to_string();
    assert!(
        errors.contains(r#"permissions \"0o17777\" refused: not an octal mode from 0 to 0o7777"#),
        "{errors}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

/// Security rule (issue 9): `write_files` paths and OpenStack's injected file names cannot
/// leave the root, whether by `..` or by a link planted in the root that points out of it.
#[test]
fn write_files_and_injected_files_stay_in_the_root() {
    require!("write_files_and_injected_files_stay_in_the_root"; root, "busybox", "chroot");
    let tmp = TempDir::new("apply-escape");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape-abs")).unwrap();
    let paths = [
        "/../outside/w1",
        "../../outside/w2",
        "/escape/w3",
        "/etc/../../outside/w4",
        "/escape-abs/w5",
    ];
    let mut cc = String::from("#cloud-config\nwrite_files:\n");
    for p in paths {
        cc.push_str(&format!("  - path: {p}\n    content: escaped\n"));
    }
    make_state(&state, "i-escape", Some(cc.as_bytes()), None);
    // Injected files, as a config drive's `files` would name them.
    let content = state.join("files-0000");
    write(&content, "escaped", 0o600);
    let mut ctx: Value =
        serde_json::from_slice(&fs::read(state.join("context.json")).unwrap()).unwrap();
    let c = json!({"path": content.to_str().unwrap(), "size": 7, "type": "other"});
    ctx["files"] = json!([
        {"path": "/../outside/i1", "content": c},
        {"path": "/escape/i2", "content": c},
        {"path": "/escape-abs/i3", "content": c},
    ]);
    fs::write(
        state.join("context.json"),
        serde_json::to_vec(&ctx).unwrap(),
    )
    .unwrap();
    let out = apply(&root, &state);
    let escaped: Vec<String> = files_under(tmp.path(), &root)
        .into_iter()
        .filter(|f| !f.starts_with("state/"))
        .collect();
    assert!(
        escaped.is_empty(),
        "written outside the root: {escaped:?}; {}",
        text(&out)
    );
    assert!(!walk_text(&outside).contains("escaped"), "{}", text(&out));
    let err = text(&out);
    for name in ["w1", "w2", "w3", "w4", "w5", "i1", "i2", "i3"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("/{name}")) && l.contains("refused")
                    || l.contains(&format!("/{name}:")) && l.contains("not")),
            "{name} not refused by name: {err}"
        );
    }
    // Nothing was written through a link.
    for link in ["escape", "escape-abs"] {
        assert!(
            fs::symlink_metadata(root.join(link))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{link} still the planted link"
        );
    }
    eprintln!(
        "write_files escape attempts: exit {:?}\n{}",
        out.status.code(),
        text(&out)
    );
}

/// Azure's context as the initramfs leaves it: its user, key, password secret and the wire
/// server to report to (a test server on 127.0.0.1), plus `errors`.
fn make_azure_state(state: &Path, id: &str, wire: &str, errors: Value) {
    fs::create_dir_all(state).unwrap();
    let pw = state.join("password");
    write(&pw, "correct horse", 0o600);
    let ctx = json!({
        "schema_version": 1,
        "platform": "azure",
        "source": {"kind": "azure-ovf", "medium": "udf", "location": "/dev/sr0"},
        "instance_id": id,
        "hostname": "vm-azure",
        "user": "azureuser",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAzure azure@key"],
        "password": {"path": pw.to_str().unwrap(), "size": 13, "type": "other"},
        "errors": errors,
        "fallbacks": [],
        "extra": {"azure": {"wireserver": wire, "preprovisioned_vm": false}}
    });
    fs::write(
        state.join("context.json"),
        serde_json::to_vec(&ctx).unwrap(),
    )
    .unwrap();
}

/// Azure: the ready report goes out once per instance, after the user (Azure's `UserName`,
/// not preroot.conf's default) exists with its key and password; a context with an error
/// reports `NotReady` with it. The wire server is the test's (`common/azure.rs`).
#[test]
fn azure_ready_report_once_after_the_user_exists() {
    require!("azure_ready_report_once_after_the_user_exists"; root, "busybox", "chroot");
    use common::azure;
    let tmp = TempDir::new("apply-azure");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    let wire = azure::wireserver(&["42"], vec![]);
    make_azure_state(&state, "vm-a", &wire.url(), json!([]));
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let keys = read(&root.join("home/azureuser/.ssh/authorized_keys"));
    assert!(keys.contains("AAAAIAzure"), "{keys}");
    assert!(
        !root.join("home/cloud-user").exists(),
        "the platform's user, not the default"
    );
    let shadow = read(&root.join("etc/shadow"));
    assert!(shadow.contains("azureuser:$6$"), "password set: {shadow}");
    let taken = azure::taken(&wire);
    assert_eq!(taken.len(), 1, "one report: {taken:?}");
    assert_eq!(
        (taken[0].state.as_str(), taken[0].incarnation.as_str()),
        ("Ready", "42")
    );
    let st = status_json(&state);
    let step = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "azure-ready")
        .cloned()
        .unwrap_or_default();
    assert!(
        step["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Ready reported for incarnation 42"),
        "{st:#}"
    );

    // The next boot of the same instance sends nothing.
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(azure::reports(&wire).len(), 1, "no second report");

    // Another instance whose initramfs phases failed: NotReady, with the reason.
    let wire = azure::wireserver(&["3"], vec![]);
    let errors =
        json!([{"stage": "sysroot", "object": "/sysroot", "message": "read-only file system"}]);
    make_azure_state(&state, "vm-b", &wire.url(), errors);
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let taken = azure::taken(&wire);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].state, "NotReady");
    assert_eq!(taken[0].incarnation, "3");
    assert!(
        taken[0].description.contains("read-only file system"),
        "{:?}",
        taken[0]
    );
}

/// With the cloud-init hand-off (cloud-init's NoCloud datasource never reports to Azure),
/// apply still sends the ready report once the seed is written, and only once.
#[test]
fn azure_ready_report_after_the_cloud_init_handoff() {
    use common::azure;
    let tmp = TempDir::new("apply-azure-ci");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(
        &root.join("usr/bin/cloud-init"),
        "#!/usr/bin/python3\n",
        0o755,
    );
    let wire = azure::wireserver(&["5"], vec![]);
    make_azure_state(&state, "vm-ci", &wire.url(), json!([]));
    for _ in 0..2 {
        let out = apply(&root, &state);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert!(
        root.join("var/lib/cloud/seed/nocloud/meta-data").is_file(),
        "seed written"
    );
    let reports = azure::reports(&wire);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        (reports[0].state.as_str(), reports[0].incarnation.as_str()),
        ("Ready", "5")
    );
    assert_eq!(mode(&root.join("var/lib/preroot/instances/vm-ci")), 0o700);
}

/// Never Ready after a failure, across boots: creating the user fails and the wire server
/// refuses the report (403); at the next boot the report goes out again, and says NotReady
/// with the first boot's useradd error, not Ready.
#[test]
fn azure_not_ready_after_a_failed_user_even_at_the_next_boot() {
    require!("azure_not_ready_after_a_failed_user_even_at_the_next_boot"; root, "busybox", "chroot");
    use common::azure::{self, Reply};
    let tmp = TempDir::new("apply-azure-fail");
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    make_root(&root);
    write(&root.join("usr/sbin/useradd"), "#!/bin/sh\nexit 1\n", 0o755);
    let refusing = azure::wireserver(&["9"], vec![Reply::Status(403)]);
    make_azure_state(&state, "vm-f", &refusing.url(), json!([]));
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(azure::taken(&refusing).is_empty(), "nothing taken");
    let errors = status_json(&state)["errors"].to_string();
    assert!(
        errors.contains("refused /machine/?comp=goalstate with HTTP 403"),
        "{errors}"
    );

    let wire = azure::wireserver(&["9"], vec![]);
    make_azure_state(&state, "vm-f", &wire.url(), json!([]));
    let out = apply(&root, &state);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let taken = azure::taken(&wire);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].state, "NotReady", "{taken:?}");
    assert!(taken[0].description.contains("useradd"), "{taken:?}");
}
