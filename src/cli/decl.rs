//! The one declaration of preroot's command line: every command and every option, with its
//! argument, its help and the commands that take it. The parser (`parse.rs`), `--help`
//! (`help.rs`) and the man pages and shell completions (generated outside the binary, from
//! these tables) all read it; nothing else names an option.
//!
//! An option's name may appear in several entries when it means different things to different
//! commands (`--root` is a fake machine tree for `context`, the root to configure for
//! `apply`); no two entries share a name and a command (tested). Help texts are single
//! paragraphs, wrapped when shown; `{platforms-on-media}`, `{platforms-served}`,
//! `{formats}` and `{phases}` stand for lists made from the code's own enums, so no list of
//! names is typed twice. Pure data.

/// A command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Context,
    Run,
    Show,
    Render,
    Grow,
    Net,
    Apply,
    Status,
    Clean,
}

/// An option, by what it means (the parser's key; several entries may share a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Verbose,
    Help,
    Version,
    StateDir,
    From,
    Platform,
    MetadataUrl,
    Endpoint,
    Timeout,
    WaitTimeout,
    MachineRoot,
    TargetRoot,
    Phase,
    Json,
    Iface,
    Context,
    Format,
    Out,
    DryRun,
    Wait,
    SshHostKeys,
    Homes,
    NoLabels,
}

/// What a shell completes an option's value (or an operand) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Complete {
    Nothing,
    File,
    Dir,
    /// One of the names in the help's list placeholder (`{formats}` …).
    Words(&'static str),
}

/// One declared command.
#[derive(Debug, Clone, Copy)]
pub struct CommandDecl {
    pub cmd: Cmd,
    pub name: &'static str,
    /// One line for the command list.
    pub about: &'static str,
    /// The paragraph(s) of `preroot NAME --help`, separated by blank lines.
    pub help: &'static str,
    /// Its operand, shown as `[NAME]` (`grow`'s `ROOTSPEC`), if it takes one.
    pub operand: Option<&'static str>,
}

/// One declared option: `--long` (and `-s`), its value's name, its help, which commands take
/// it (empty: every command and none, a global option).
#[derive(Debug, Clone, Copy)]
pub struct OptDecl {
    pub opt: Opt,
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name (`DIR`), or `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
    pub commands: &'static [Cmd],
    /// The command cannot run without it.
    pub required: bool,
    /// May be given several times (the values are collected).
    pub repeat: bool,
    pub complete: Complete,
}

impl OptDecl {
    /// Global options are taken with any command (and before it).
    pub fn global(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn takes(&self, cmd: Cmd) -> bool {
        self.global() || self.commands.contains(&cmd)
    }
}

use Cmd::*;

pub const PROGRAM: &str = "preroot";
pub const ABOUT: &str =
    "configure this instance from the initramfs, before the root filesystem is mounted";

pub const COMMANDS: &[CommandDecl] = &[
    CommandDecl {
        cmd: Context,
        name: "context",
        about: "Detect the platform, read its data and print the normalized context as JSON.",
        help: "Find out which cloud started this machine, read its data and print the normalized \
            context as JSON on stdout (docs/context.md). Secrets (user data, vendor data, \
            passwords, injected files) go to 0600 files in the state directory, never to \
            stdout. Without --from or --platform the platform is detected as at boot: the \
            kernel command line, media labels, DMI.",
        operand: None,
    },
    CommandDecl {
        cmd: Run,
        name: "run",
        about: "One phase of the boot, run by the initramfs (a systemd unit or dracut hook each).",
        help: "One phase of the boot, run by the initramfs (a systemd unit or dracut hook each): \
            fetch (detect and read the datasource: its medium, or its metadata service with the \
            network brought up and put back; write STATE/context.json), grow (the root disk; \
            before sysroot.mount), sysroot (the filesystem, network files, hand-off; after \
            sysroot.mount). Problems are recorded in the context and the boot goes on.",
        operand: None,
    },
    CommandDecl {
        cmd: Show,
        name: "show",
        about: "What preroot did at this boot, from STATE/context.json.",
        help: "What preroot did at this boot, from STATE/context.json: the platform and where \
            its data came from, instance id, hostname, links, errors, warnings, fallbacks and \
            each phase's start, duration and peak RSS. Then, when the root's SELinux policy is \
            on, whether each file of preroot's manifest carries the label the policy gives \
            it: one line per file that does not (docs/selinux.md).",
        operand: None,
    },
    CommandDecl {
        cmd: Render,
        name: "render",
        about:
            "Write the network configuration a context describes, as a plain tree or into a root.",
        help: "With --format FORMAT --out DIR: write the network configuration a context \
            describes as a plain tree under DIR (DIR/etc/systemd/network/..., for \
            inspection). NICs with a MAC are tied to it, since the booted system renames \
            them: nm matches the MAC, the others also write a 10-preroot-NAME.link that keeps \
            the name (docs/sysroot.md).\n\nWith --root DIR: configure the system root DIR as \
            the boot's sysroot phase does: network files (FORMAT, else chosen from what DIR \
            enables), /etc/hostname, one marked /etc/hosts line, \
            DIR/etc/preroot/{instance-id,manifest.json}; once per instance, no symlink \
            followed (docs/sysroot.md).",
        operand: None,
    },
    CommandDecl {
        cmd: Grow,
        name: "grow",
        about: "Grow the root partition, its LVM PV and LV, and its filesystem.",
        help: "Grow the root partition (GPT or MBR) to fill the disk, its LVM PV and LV, and \
            the filesystem if it is mounted (ext4, xfs); print what was done. ROOTSPEC is a \
            root= value (/dev/..., UUID=, LABEL=, PARTUUID=, PARTLABEL=) and defaults to the \
            kernel command line's root=. JSON shape: docs/grow.md.",
        operand: Some("ROOTSPEC"),
    },
    CommandDecl {
        cmd: Net,
        name: "net",
        about: "Bring up the network as the fetch phase does and print what it got.",
        help: "Bring up the network as the fetch phase does (IPv4 and IPv6 raced on every \
            Ethernet NIC, or those named by --iface or ip=: DHCPv4 or a static ip= address, and \
            SLAAC with DHCPv6 as the router asks), keep the first configuration (a lease, a \
            usable IPv6 address, a static address) and print it.",
        operand: None,
    },
    CommandDecl {
        cmd: Apply,
        name: "apply",
        about: "In the booted system: apply the context and user data, once per instance.",
        help: "In the booted system (preroot-apply.service): apply the context and the user \
            data the initramfs left in STATE, once per instance id (state in \
            DIR/var/lib/preroot/instances/ID/): ssh host keys regenerated, the default user \
            (DIR/etc/preroot/preroot.conf) and cloud-config users, ssh keys, passwords \
            (SHA-512 crypt), hostname, write_files, Heat's cfn-userdata, scripts and runcmd \
            (log: /var/log/preroot-user-data.log); bootcmd and boothooks at every boot. With \
            --root every program runs chrooted into DIR. Keys outside the supported \
            cloud-config subset are reported by name (docs/apply.md). An image that keeps \
            cloud-init gets a NoCloud seed and a drop-in instead (preroot.handoff=, or \
            detected). Writes STATE/apply.json.",
        operand: None,
    },
    CommandDecl {
        cmd: Status,
        name: "status",
        about: "Has apply finished at this boot, and what failed.",
        help: "Has apply finished at this boot, and what failed (STATE/apply.json). Exit 0 done \
            without errors, 1 done with errors, 3 not finished.",
        operand: None,
    },
    CommandDecl {
        cmd: Clean,
        name: "clean",
        about: "Re-arm a system root for imaging.",
        help: "Re-arm a system root for imaging: preroot's instance state, the files its \
            manifest lists, /etc/machine-id emptied, Heat and cloud-init hand-off files, logs \
            under /var/log truncated in place; ssh host keys and the homes' \
            authorized_keys/.bash_history only with their flag.",
        operand: None,
    },
];

const MACHINE_ROOT_HELP: &str = "Take /proc, /sys, /dev and /sysroot from DIR (a fake machine \
    tree): the kernel command line (DIR/proc/cmdline), the host NICs \
    (DIR/sys/class/net/*/address), DMI (DIR/sys/class/dmi/id/*) and the block devices \
    (DIR/sys/class/block/*, read at DIR/dev/NAME).";

pub const OPTIONS: &[OptDecl] = &[
    OptDecl {
        opt: Opt::From,
        long: "from",
        short: None,
        value: Some("KIND:PATH"),
        help: "Read this datasource instead of detecting one. KIND is the platform whose medium \
            it is ({platforms-on-media}; configdrive is openstack's config drive). PATH is a \
            directory, an ISO9660, FAT, ext2/3/4 or UDF image file, or a block device; nothing is \
            mounted. With --root, DIR supplies the host NICs only. Not with --platform.",
        commands: &[Context],
        required: false,
        repeat: false,
        complete: Complete::File,
    },
    OptDecl {
        opt: Opt::Platform,
        long: "platform",
        short: None,
        value: Some("P"),
        help: "Read platform P's metadata service instead of detecting: {platforms-served} \
            (nocloud is NoCloud-net: the ds=nocloud;s=URL of the kernel command line, or \
            --metadata-url). Brings up the network first (IPv4 and IPv6 on all NICs, raced, \
            the platform's IPv6 service address too: {urls6}) when the service's address has \
            no route, and reads the service where it answered first.",
        commands: &[Context],
        required: false,
        repeat: false,
        complete: Complete::Words("{platforms-served}"),
    },
    OptDecl {
        opt: Opt::MetadataUrl,
        long: "metadata-url",
        short: None,
        value: Some("URL"),
        help: "The service's base URL instead of the platform's ({urls}). An IPv6 link-local \
            address takes its zone as RFC 6874 writes it: http://[fe80::a9fe:a9fe%25eth0]/. \
            Only with --platform.",
        commands: &[Context],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Endpoint,
        long: "endpoint",
        short: None,
        value: Some("NAME=URL"),
        help: "Another endpoint of the platform's service at URL instead of its default: \
            {endpoints}. Repeatable; only with --platform.",
        commands: &[Context],
        required: false,
        repeat: true,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Timeout,
        long: "timeout",
        short: None,
        value: Some("S"),
        help: "Deadline in seconds for network and fetch (0 to 3600) [default: \
            preroot.timeout=, else 20].",
        commands: &[Context, Net],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::WaitTimeout,
        long: "timeout",
        short: None,
        value: Some("S"),
        help: "How long --wait waits, in seconds (0 to 3600) [600].",
        commands: &[Status],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::MachineRoot,
        long: "root",
        short: None,
        value: Some("DIR"),
        help: MACHINE_ROOT_HELP,
        commands: &[Context, Run, Grow, Net],
        required: false,
        repeat: false,
        complete: Complete::Dir,
    },
    OptDecl {
        opt: Opt::TargetRoot,
        long: "root",
        short: None,
        value: Some("DIR"),
        help: "The system root to configure [/ for apply and clean].",
        commands: &[Render, Apply, Clean],
        required: false,
        repeat: false,
        complete: Complete::Dir,
    },
    OptDecl {
        opt: Opt::TargetRoot,
        long: "root",
        short: None,
        value: Some("DIR"),
        help: "The system root whose SELinux labels are checked [/].",
        commands: &[Show],
        required: false,
        repeat: false,
        complete: Complete::Dir,
    },
    OptDecl {
        opt: Opt::NoLabels,
        long: "no-labels",
        short: None,
        value: None,
        help: "Write without SELinux labels, even where the root's policy \
            (DIR/etc/selinux/config) is on (docs/selinux.md).",
        commands: &[Render, Apply, Clean],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Phase,
        long: "phase",
        short: None,
        value: Some("PHASE"),
        help: "The phase to run: {phases}.",
        commands: &[Run],
        required: true,
        repeat: false,
        complete: Complete::Words("{phases}"),
    },
    OptDecl {
        opt: Opt::Json,
        long: "json",
        short: None,
        value: None,
        help: "Print context.json as it is.",
        commands: &[Show],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Json,
        long: "json",
        short: None,
        value: None,
        help: "Print the report as JSON (docs/grow.md).",
        commands: &[Grow],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Json,
        long: "json",
        short: None,
        value: None,
        help: "Print the lease as JSON.",
        commands: &[Net],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Json,
        long: "json",
        short: None,
        value: None,
        help: "Print STATE/apply.json's status as JSON.",
        commands: &[Status],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Iface,
        long: "iface",
        short: None,
        value: Some("NAME"),
        help: "Run DHCP on NAME only; repeatable.",
        commands: &[Net],
        required: false,
        repeat: true,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Context,
        long: "context",
        short: None,
        value: Some("FILE"),
        help: "The context to render (from `preroot context`).",
        commands: &[Render],
        required: true,
        repeat: false,
        complete: Complete::File,
    },
    OptDecl {
        opt: Opt::Format,
        long: "format",
        short: None,
        value: Some("FORMAT"),
        help: "The network format: {formats}. Required with --out; with --root it overrides \
            the format chosen from what the root enables.",
        commands: &[Render],
        required: false,
        repeat: false,
        complete: Complete::Words("{formats}"),
    },
    OptDecl {
        opt: Opt::Out,
        long: "out",
        short: None,
        value: Some("DIR"),
        help: "Where to write the plain tree (not with --root).",
        commands: &[Render],
        required: false,
        repeat: false,
        complete: Complete::Dir,
    },
    OptDecl {
        opt: Opt::DryRun,
        long: "dry-run",
        short: None,
        value: None,
        help: "Print the plan; write nothing.",
        commands: &[Grow],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::DryRun,
        long: "dry-run",
        short: None,
        value: None,
        help: "Print what would be done; change nothing.",
        commands: &[Clean],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Wait,
        long: "wait",
        short: None,
        value: None,
        help: "Wait until apply is done (or --timeout).",
        commands: &[Status],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::SshHostKeys,
        long: "ssh-host-keys",
        short: None,
        value: None,
        help: "Also remove /etc/ssh/ssh_host_*.",
        commands: &[Clean],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Homes,
        long: "homes",
        short: None,
        value: None,
        help: "Also remove ~/.ssh/authorized_keys and ~/.bash_history of root and every /home/*.",
        commands: &[Clean],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::StateDir,
        long: "state-dir",
        short: None,
        value: Some("DIR"),
        help: "Where context.json and the secrets (user data, vendor data, passwords, injected \
            files; mode 0600) are [default: /run/preroot].",
        commands: &[],
        required: false,
        repeat: false,
        complete: Complete::Dir,
    },
    OptDecl {
        opt: Opt::Verbose,
        long: "verbose",
        short: Some('v'),
        value: None,
        help: "Log to stderr (otherwise: /dev/kmsg in the initramfs, else nothing).",
        commands: &[],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Help,
        long: "help",
        short: Some('h'),
        value: None,
        help: "Print this help (with a command: that command's).",
        commands: &[],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
    OptDecl {
        opt: Opt::Version,
        long: "version",
        short: Some('V'),
        value: None,
        help: "Print the version.",
        commands: &[],
        required: false,
        repeat: false,
        complete: Complete::Nothing,
    },
];

/// What the exit status means, for every command.
pub const EXIT_STATUS: &str = "0 done; 1 the datasource is missing, unreadable or invalid, its \
    metadata service did not answer in time, or no NIC got a usable lease (context, net: one \
    line on stderr names the file, URL or NICs and the problem), the state could not be written \
    (run), a step failed (apply, clean) or apply finished with errors (status); 2 bad usage; 3 \
    (status) apply has not finished.";

/// The command called `name`.
pub fn command(name: &str) -> Option<&'static CommandDecl> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The declaration of `cmd`.
pub fn declaration(cmd: Cmd) -> Option<&'static CommandDecl> {
    COMMANDS.iter().find(|c| c.cmd == cmd)
}

/// The options `cmd` takes, its own first, then the global ones.
pub fn options_of(cmd: Cmd) -> impl Iterator<Item = &'static OptDecl> {
    let own = OPTIONS.iter().filter(move |o| o.commands.contains(&cmd));
    own.chain(OPTIONS.iter().filter(|o| o.global()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_entries_share_a_name_and_a_command() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in OPTIONS.iter().skip(i + 1) {
                if a.long != b.long {
                    continue;
                }
                assert_eq!(a.value.is_some(), b.value.is_some(), "--{}: value", a.long);
                assert!(
                    !a.global() && !b.global(),
                    "--{}: a global option declared twice",
                    a.long
                );
                for c in a.commands {
                    assert!(!b.commands.contains(c), "--{} twice for {c:?}", a.long);
                }
            }
        }
    }

    #[test]
    fn every_command_is_declared_once() {
        for c in COMMANDS {
            assert_eq!(
                COMMANDS.iter().filter(|d| d.cmd == c.cmd).count(),
                1,
                "case {:?}",
                c.cmd
            );
            assert_eq!(
                command(c.name).map(|d| d.cmd),
                Some(c.cmd),
                "case {}",
                c.name
            );
        }
    }
}
