//! Detection end to end on fake machine trees whose "devices" are real images built here:
//! an ISO9660 config drive as `dev/sr0`, a FAT NoCloud seed, and (as root) an OpenStack
//! Ironic-style disk whose last GPT partition holds the config drive, probed through a loop
//! device. Nothing here reads this machine's own disks: every device the scan sees is made
//! by the test.

mod common;

use common::{LoopDev, TempDir};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(rel: &str) -> String {
    common::fixtures().join(rel).display().to_string()
}

/// A fake root with `proc/cmdline`, the fixture's NICs, and block devices `name -> device`.
fn machine(tmp: &Path, cmdline: &str, nics_from: Option<&str>, devices: &[(&str, &Path, bool)]) {
    fs::create_dir_all(tmp.join("proc")).unwrap();
    fs::write(tmp.join("proc/cmdline"), cmdline).unwrap();
    if let Some(src) = nics_from {
        sh(&format!(
            "mkdir -p {0}/sys/class && cp -r {src}/sys/class/net {0}/sys/class/",
            tmp.display()
        ));
    }
    fs::create_dir_all(tmp.join("dev")).unwrap();
    for (name, device, partition) in devices {
        let sys = tmp.join("sys/class/block").join(name);
        fs::create_dir_all(&sys).unwrap();
        if *partition {
            fs::write(sys.join("partition"), "4\n").unwrap();
        }
        std::os::unix::fs::symlink(device, tmp.join("dev").join(name)).unwrap();
    }
}

fn context(root: &Path, state: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args([
            "context",
            "--root",
            root.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn config_drive_iso_as_cdrom() {
    require!("config_drive_iso_as_cdrom"; "xorriso");
    let tmp = TempDir::new("det-iso");
    let src = fixture("openstack/cloudinit-configdrive-v2-full/input");
    let iso = tmp.path().join("cd.iso");
    sh(&format!(
        "xorriso -as mkisofs -quiet -R -J -V config-2 -o {} -m sys {src}",
        iso.display()
    ));
    let root = tmp.path().join("root");
    // A blank "disk" next to it must be passed over.
    let blank = tmp.path().join("blank.img");
    fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    machine(
        &root,
        "ro quiet\n",
        Some(&src),
        &[("sr0", &iso, false), ("vda", &blank, false)],
    );
    let state = tmp.path().join("state");
    let ctx = context(&root, &state);
    assert_eq!(ctx["platform"], "openstack");
    assert_eq!(ctx["source"]["kind"], "config-drive");
    assert_eq!(ctx["source"]["medium"], "iso9660");
    assert_eq!(ctx["source"]["location"], "/dev/sr0");
    assert_eq!(ctx["instance_id"], "b0fa911b-69d4-4476-bbe2-1c92bff6535c");
    assert_eq!(ctx["hostname"], "sm-foo-test.novalocal");
    assert_eq!(
        fs::read_to_string(ctx["user_data"]["path"].as_str().unwrap()).unwrap(),
        "#!/bin/sh\necho This is user data\n"
    );
    assert!(ctx["extra"]["detected_by"]
        .as_str()
        .unwrap()
        .contains("config-2"));

    // preroot.platform=none on the command line wins over the medium.
    let root2 = tmp.path().join("root2");
    machine(
        &root2,
        "preroot.platform=none\n",
        None,
        &[("sr0", &iso, false)],
    );
    let ctx = context(&root2, &state);
    assert_eq!(ctx["source"]["kind"], "kernel-cmdline");
}

#[test]
fn nocloud_fat_seed() {
    require!("nocloud_fat_seed"; "mkfs.vfat", "mcopy");
    let tmp = TempDir::new("det-fat");
    let img = tmp.path().join("seed.img");
    let src = fixture("nocloud/afterburn-kubevirt-nocloud-v2/input");
    sh(&format!(
        "mkfs.vfat -n CIDATA -C {} 2048 >/dev/null && mcopy -i {0} {src}/* ::",
        img.display()
    ));
    let root = tmp.path().join("root");
    machine(&root, "console=ttyS0\n", None, &[("vdb", &img, false)]);
    let ctx = context(&root, &tmp.path().join("state"));
    assert_eq!(ctx["platform"], "nocloud");
    assert_eq!(ctx["source"]["medium"], "fat");
    assert_eq!(ctx["source"]["kind"], "nocloud-seed");
    assert!(ctx["instance_id"].is_string(), "{ctx}");
}

/// Ironic writes the config drive into a partition at the end of the bare-metal disk.
#[test]
fn ironic_config_drive_partition_on_a_loop_disk() {
    require!("ironic_config_drive_partition_on_a_loop_disk"; root, loop, "xorriso", "sgdisk");
    let tmp = TempDir::new("det-ironic");
    let src = fixture("openstack/glean-ovh/input/mnt/config");
    let iso = tmp.path().join("cd.iso");
    sh(&format!(
        "xorriso -as mkisofs -quiet -R -J -V config-2 -o {} {src}",
        iso.display()
    ));
    let disk = tmp.path().join("disk.img");
    sh(&format!(
        "truncate -s 64M {0} && sgdisk -o -n 1:2048:+40M -t 1:8300 -n 4:0:0 -t 4:0700 {0} >/dev/null && \
         dd if={1} of={0} bs=512 seek=$(sgdisk -i 4 {0} | awk '/First sector/ {{print $3}}') conv=notrunc status=none",
        disk.display(),
        iso.display()
    ));
    let lo = LoopDev::attach(&disk, None);
    let part = lo.partition(4);
    let dev_name = Path::new(&lo.dev)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let part_name = format!("{dev_name}p4");
    let root = tmp.path().join("root");
    machine(
        &root,
        "root=LABEL=root\n",
        Some(&fixture("openstack/glean-ovh/input")),
        &[
            (&part_name, &part, true),
            (&dev_name, Path::new(&lo.dev), false),
        ],
    );
    let ctx = context(&root, &tmp.path().join("state"));
    assert_eq!(ctx["platform"], "openstack");
    assert_eq!(ctx["source"]["location"], format!("/dev/{part_name}"));
    assert_eq!(ctx["source"]["partition_of"], format!("/dev/{dev_name}"));
    assert_eq!(ctx["source"]["medium"], "iso9660");
    assert_eq!(ctx["hostname"], "centos-7-ovh-bhs1-0002156591.novalocal");
}

/// An ext4 image of `src` (mkfs.ext4 -d, no mount), leaving out the fixture's `sys/`.
fn ext4_image(tmp: &Path, src: &str, label: &str, name: &str) -> std::path::PathBuf {
    let tree = tmp.join(format!("{name}-tree"));
    let img = tmp.join(format!("{name}.img"));
    sh(&format!(
        "mkdir -p {t} && cp -r {src}/. {t}/ && rm -rf {t}/sys && \
         E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -L {label} -d {t} {i} 16M",
        t = tree.display(),
        i = img.display()
    ));
    img
}

/// `mkfs.ext4 -L cidata` and `-L config-2` seeds as plain disks: found by their label and
/// read in user space like the ISO and FAT ones.
#[test]
fn ext4_seeds_as_disks() {
    require!("ext4_seeds_as_disks"; "mkfs.ext4");
    let tmp = TempDir::new("det-ext4");
    let seed = ext4_image(
        tmp.path(),
        &fixture("nocloud/afterburn-kubevirt-nocloud-v2/input"),
        "cidata",
        "seed",
    );
    let blank = tmp.path().join("blank.img");
    fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let root = tmp.path().join("root");
    machine(
        &root,
        "console=ttyS0\n",
        None,
        &[("vda", &blank, false), ("vdb", &seed, false)],
    );
    let ctx = context(&root, &tmp.path().join("state"));
    assert_eq!(ctx["platform"], "nocloud", "{ctx}");
    assert_eq!(ctx["source"]["kind"], "nocloud-seed");
    assert_eq!(ctx["source"]["medium"], "ext4");
    assert_eq!(ctx["source"]["location"], "/dev/vdb");
    assert!(ctx["instance_id"].is_string(), "{ctx}");
    assert!(ctx["user_data"]["path"].is_string(), "{ctx}");

    let src = fixture("openstack/cloudinit-configdrive-v2-full/input");
    let drive = ext4_image(tmp.path(), &src, "config-2", "drive");
    let root2 = tmp.path().join("root2");
    machine(&root2, "ro quiet\n", Some(&src), &[("vdc", &drive, false)]);
    let ctx = context(&root2, &tmp.path().join("state2"));
    assert_eq!(ctx["platform"], "openstack", "{ctx}");
    assert_eq!(ctx["source"]["kind"], "config-drive");
    assert_eq!(ctx["source"]["medium"], "ext4");
    assert_eq!(ctx["instance_id"], "b0fa911b-69d4-4476-bbe2-1c92bff6535c");
    assert_eq!(ctx["hostname"], "sm-foo-test.novalocal");
    assert_eq!(
        fs::read_to_string(ctx["user_data"]["path"].as_str().unwrap()).unwrap(),
        "#!/bin/sh\necho This is user data\n"
    );
}

/// An ext4 config drive in the last partition of a loop disk: a real block device, whose size
/// comes from lseek, read without mounting.
#[test]
fn ext4_config_drive_partition_on_a_loop_disk() {
    require!("ext4_config_drive_partition_on_a_loop_disk"; root, loop, "mkfs.ext4", "sgdisk");
    let tmp = TempDir::new("det-ext4-loop");
    let src = fixture("openstack/glean-ovh/input/mnt/config");
    let drive = ext4_image(tmp.path(), &src, "config-2", "drive");
    let disk = tmp.path().join("disk.img");
    sh(&format!(
        "truncate -s 64M {0} && sgdisk -o -n 1:2048:+40M -t 1:8300 -n 4:0:0 -t 4:8300 {0} >/dev/null && \
         dd if={1} of={0} bs=512 seek=$(sgdisk -i 4 {0} | awk '/First sector/ {{print $3}}') conv=notrunc status=none",
        disk.display(),
        drive.display()
    ));
    let lo = LoopDev::attach(&disk, None);
    let part = lo.partition(4);
    let dev_name = Path::new(&lo.dev)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let part_name = format!("{dev_name}p4");
    let root = tmp.path().join("root");
    machine(
        &root,
        "root=LABEL=root\n",
        Some(&fixture("openstack/glean-ovh/input")),
        &[
            (&part_name, &part, true),
            (&dev_name, Path::new(&lo.dev), false),
        ],
    );
    let ctx = context(&root, &tmp.path().join("state"));
    assert_eq!(ctx["platform"], "openstack", "{ctx}");
    assert_eq!(ctx["source"]["location"], format!("/dev/{part_name}"));
    assert_eq!(ctx["source"]["partition_of"], format!("/dev/{dev_name}"));
    assert_eq!(ctx["source"]["medium"], "ext4");
    assert_eq!(ctx["hostname"], "centos-7-ovh-bhs1-0002156591.novalocal");
}
