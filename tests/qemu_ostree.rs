//! A real ostree deployment in QEMU (issue 7, "in a real boot"): `qemu/ostree.sh` commits the
//! Debian guest with Debian's `ostree` and `ostree-boot` to a repository, deploys it twice into
//! the sysroot of a GPT disk (the second deployment is the default, the first the rollback),
//! and boots the default one with its BLS entry's kernel, initramfs and `ostree=` argument,
//! with the OpenStack config drive of `make_configdrive`. The initramfs holds dracut's
//! `ostree` module (ostree-prepare-root) and preroot.
//!
//! Asserts that the guest booted the deployment to multi-user, that preroot ran its phases in
//! the initramfs, its sysroot phase after ostree-prepare-root (so /sysroot was the
//! deployment), and that its files are in the booted deployment's /etc and nowhere else on the
//! disk: not at the top of the physical root, not in the rollback deployment. networkd brought
//! the NIC up from them and the hostname is set.
//!
//! Needs root, QEMU and the host's `ostree` (qemu/host-deps.sh); else `SKIP`, or a failure
//! under `PREROOT_REQUIRE_ALL=1`. `qemu/README.md` says what it costs.

mod common;

use common::qemu::*;
use common::{has_tool, missing};

const INSTANCE: &str = "6a1c1a3b-1111-4222-8333-444455556666";

/// The lines of the probe's output (section `x-ostree`) under `## name`, up to the next
/// `## ` line.
fn part(section: &str, name: &str) -> String {
    let head = format!("## {name}");
    section
        .lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The monotonic time (s) of the first journal line in `lines` that contains `what`.
fn journal_time(lines: &str, what: &str) -> Option<f64> {
    lines.lines().find(|l| l.contains(what)).and_then(|l| {
        l.trim_start()
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn qemu_ostree_deployment() {
    let test = "qemu_ostree_deployment";
    if !require_qemu(test) {
        return;
    }
    if !has_tool("ostree") {
        missing(test, "the tool `ostree` (qemu/host-deps.sh installs it)");
        return;
    }
    let r = boot(test, "ostree", &[]);
    assert_ostree_boot(test, &r);
}

/// Everything `qemu_ostree_deployment` asserts of the guest's report.
fn assert_ostree_boot(test: &str, r: &Report) {
    let probe = r.get("x-ostree");
    let ctx = assert_booted_with_preroot(test, r);
    assert_configdrive(test, &ctx);

    // Booted from the deployment: ostree-prepare-root left /run/ostree-booted, `ostree admin
    // status` marks the booted deployment, and the kernel was given its ostree= link.
    assert!(
        probe.starts_with("ostree-booted yes"),
        "{test}: /run/ostree-booted missing; probe:\n{probe}"
    );
    let cmdline = r.get("cmdline");
    assert!(
        cmdline.contains("ostree=/ostree/boot."),
        "{test}: no ostree= on the command line: {cmdline}"
    );
    let status = part(probe, "status");
    let booted_csum = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("* debian "))
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!("{test}: no booted deployment in ostree admin status:\n{status}")
        });

    // The deployments on the disk: the booted one has preroot's instance id, hostname and
    // network file; the other one (the rollback) has none of them.
    let deployments = part(probe, "deployments");
    let deployments: Vec<&str> = deployments.lines().collect();
    assert_eq!(
        deployments.len(),
        2,
        "{test}: two deployments expected; probe:\n{probe}"
    );
    for d in &deployments {
        let booted = d.contains(" booted ");
        if booted {
            assert!(
                d.contains(&format!("/{booted_csum} ")),
                "{test}: the deployment that is / ({d}) is not the one ostree calls booted \
                 ({booted_csum})"
            );
            assert!(
                d.contains(&format!("instance-id={INSTANCE} "))
                    && d.contains("hostname=preroot-qemu ")
                    && !d.ends_with("network=0"),
                "{test}: preroot's files not in the booted deployment's /etc: {d}"
            );
        } else {
            assert!(
                d.contains("instance-id=none ")
                    && d.contains("hostname=debian-guest ")
                    && d.ends_with("network=0"),
                "{test}: preroot wrote into the deployment that did not boot: {d}"
            );
        }
    }
    assert_eq!(
        deployments
            .iter()
            .filter(|d| d.contains(" booted "))
            .count(),
        1,
        "{test}: exactly one deployment is /; probe:\n{probe}"
    );

    // Nothing of preroot's at the top of the physical root or elsewhere outside the
    // deployments (the repository's objects have hashed names).
    let top = part(probe, "sysroot-top");
    assert!(
        top.split_whitespace().any(|l| l == "ostree")
            && !top.split_whitespace().any(|l| l == "etc"),
        "{test}: the physical root's top level changed:\n{top}"
    );
    let outside = part(probe, "preroot-outside-deployments");
    let outside = outside.trim();
    assert!(
        outside.is_empty(),
        "{test}: preroot's files outside the booted deployment:\n{outside}"
    );

    // In the booted /etc (the report reads them there): manifest, instance id, network file.
    let etc = r.get("etc-preroot");
    assert!(
        etc.contains(&format!("# /etc/preroot/instance-id\n{INSTANCE}"))
            && etc.contains("# /etc/preroot/manifest.json\n{"),
        "{test}: /etc/preroot/{{instance-id,manifest.json}} not in the booted /etc:\n{etc}"
    );
    let manifest = r
        .try_json_sub("etc-preroot", "/etc/preroot/manifest.json")
        .unwrap_or_else(|e| panic!("{test}: the booted /etc's manifest.json: {e}"));
    assert_eq!(manifest["instance_id"], INSTANCE, "{test}: {manifest:#}");
    assert_eq!(manifest["renderer"], "networkd", "{test}: {manifest:#}");

    // The sysroot phase wrote into /sysroot as ostree-prepare-root left it (the deployment),
    // not into a path it resolved itself, and it ran after prepare-root finished.
    let sysroot_outcome = ctx["phases"][2]["outcome"].as_str().unwrap_or("");
    assert!(
        sysroot_outcome.contains("/sysroot (networkd)"),
        "{test}: sysroot phase outcome {sysroot_outcome:?}"
    );
    let order = part(probe, "order");
    let prepared = journal_time(&order, "Finished ostree-prepare-root.service")
        .or_else(|| journal_time(&order, "Finished OSTree Prepare OS/"));
    let configured = journal_time(&order, "Starting preroot-sysroot.service")
        .or_else(|| journal_time(&order, "Starting preroot: configure the root filesystem"));
    match (prepared, configured) {
        (Some(p), Some(c)) => assert!(
            p <= c,
            "{test}: preroot's sysroot phase started at {c} s, before ostree-prepare-root \
             finished at {p} s:\n{order}"
        ),
        _ => panic!(
            "{test}: ostree-prepare-root or preroot-sysroot missing in the journal:\n{order}"
        ),
    }

    // networkd read preroot's file and configured the NIC; the hostname is set.
    assert_configured(test, r, "10.0.2.15", "preroot-qemu");
    // The userspace half ran in the deployment too: the default user's keys went through
    // ostree's /home -> var/home link.
    let apply = r
        .try_json("preroot-status")
        .unwrap_or_else(|e| panic!("{test}: preroot status --json: {e}"));
    assert_eq!(
        (&apply["stage"], apply["errors"].as_array().map(Vec::len)),
        (&serde_json::Value::from("done"), Some(0)),
        "{test}: preroot apply in the deployment: {apply:#}\n{}",
        r.get("journal-apply")
    );
    assert!(
        apply["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["step"] == "ssh-keys cloud-user"),
        "{test}: no ssh keys for the default user: {apply:#}"
    );
    eprintln!(
        "{test}: booted deployment {booted_csum}; prepare-root finished at {:.2} s, sysroot \
         phase started at {:.2} s",
        prepared.unwrap_or(0.0),
        configured.unwrap_or(0.0)
    );
}

/// The probe's parts, as the report of a real boot has them (an empty part followed by the
/// next header; ls's columns on the serial console).
#[test]
fn probe_parts() {
    let probe = "ostree-booted yes\n## status\n* debian abc.1\n  debian abc.0 (rollback)\n\
                 ## sysroot-top\nboot  dev  ostree\n## preroot-outside-deployments\n\
                 ## order\n[   37.224267] localhost systemd[1]: Finished ostree-prepare-root.service - x\n\
                 ## end\n";
    assert_eq!(
        part(probe, "status"),
        "* debian abc.1\n  debian abc.0 (rollback)\n"
    );
    assert_eq!(part(probe, "sysroot-top"), "boot  dev  ostree\n");
    assert_eq!(part(probe, "preroot-outside-deployments"), "");
    assert_eq!(part(probe, "missing"), "");
    assert_eq!(
        journal_time(
            &part(probe, "order"),
            "Finished ostree-prepare-root.service"
        ),
        Some(37.224267)
    );
}
