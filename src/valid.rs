//! The one validation of names and values that come from outside — host names, search
//! domains, interface names, MAC addresses, route ends, bonding modes and options, VLAN ids,
//! MTUs, user names, sudo rules — used wherever such a value enters (datasources, the kernel
//! command line, preroot.conf, user data; [`crate::context::Context::check_values`] for a whole
//! network) and again by the writers (renderers, apply), whatever the value's origin. Pure:
//! text in, a normalized value or the rule it broke out. Each `Err` is one line naming the
//! value (escaped, [`crate::text::show`]) and the rule; the caller adds the input it came from.
#![deny(clippy::arithmetic_side_effects)]

use crate::text::show;

/// Normalizes a MAC address to lower case with colons; `None` if it is not 6 (or 20, for
/// InfiniBand) hex octets.
pub fn normalize_mac(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let octets: Vec<&str> = raw.split([':', '-']).collect();
    if !(octets.len() == 6 || octets.len() == 20) {
        return None;
    }
    if !octets
        .iter()
        .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(octets.join(":").to_ascii_lowercase())
}

/// The kernel's name for a bonding mode given as a name or a number (network_data.json
/// writes `"4"`, netplan `802.3ad`); `None` if unknown.
pub fn bond_mode_name(raw: &str) -> Option<&'static str> {
    const MODES: [&str; 7] = [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
    ];
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<usize>() {
        return MODES.get(n).copied();
    }
    MODES.iter().copied().find(|m| m.eq_ignore_ascii_case(raw))
}

/// Longest hostname we accept: the DNS limit for a fully qualified name.
pub const HOSTNAME_MAX: usize = 253;

/// Checks a hostname (or FQDN) from metadata: labels of letters, digits, hyphens and
/// underscores, 1..=63 bytes each, not starting or ending with a hyphen, at most
/// [`HOSTNAME_MAX`] bytes in all. A trailing dot is dropped. Returns the name in lower case.
///
/// Underscores are outside RFC 1123 but common in real instance names (OpenStack and KubeVirt
/// pass display names such as `test_instance-kubevirt` through), so the context keeps them;
/// the renderer, which writes `/etc/hostname`, applies the stricter rule of the target system.
/// Anything else (spaces, control characters, `/`, over-long names) is refused here.
pub fn validate_hostname(raw: &str) -> Result<String, String> {
    let name = raw.trim().strip_suffix('.').unwrap_or(raw.trim());
    if name.is_empty() {
        return Err("empty hostname".into());
    }
    if name.len() > HOSTNAME_MAX {
        return Err(format!(
            "hostname is {} bytes, more than {HOSTNAME_MAX}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("hostname label {label:?} is not 1 to 63 bytes"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "hostname label {label:?} starts or ends with a hyphen"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "hostname label {label:?} has characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// A user name `useradd` accepts everywhere: `[a-z_][a-z0-9_-]*[$]?`, at most 32.
pub fn valid_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Longest interface name the kernel takes (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = 15;

/// An interface name: 1..=15 bytes of letters, digits, `-`, `_`, `.`, `:`; not `.`, `..`,
/// `all` or `default` (directories in `/proc/sys/net/ipv4/conf/`), not all digits (it could
/// be taken for an ifindex). Narrower than the kernel's `dev_valid_name` (which refuses only
/// `/`, whitespace and those two) on purpose: these names become file names, values in
/// INI-like and shell-sourced files, and words on `ip` command lines.
pub fn ifname(name: &str) -> Result<(), String> {
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if name.is_empty() || name.len() > IFNAME_MAX || !chars_ok {
        return Err(format!(
            "interface name \"{}\" is not 1 to {IFNAME_MAX} letters, digits, '-', '_', '.' or ':'",
            show(name)
        ));
    }
    if matches!(name, "." | ".." | "all" | "default") || name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{}\" cannot be an interface name", show(name)));
    }
    Ok(())
}

/// A MAC address as the context holds it: 6 (Ethernet) or 20 (InfiniBand) octets of two hex
/// digits, colon separated ([`normalize_mac`] makes it so).
pub fn mac(value: &str) -> Result<(), String> {
    let octets: Vec<&str> = value.split(':').collect();
    let ok = (octets.len() == 6 || octets.len() == 20)
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "MAC address \"{}\" is not 6 or 20 colon-separated hex octets",
            show(value)
        ))
    }
}

/// A route's destination or a rule's end: an IP address, optionally with a prefix length the
/// family allows (`10.0.0.0/8`, `::/0`, `192.0.2.1`).
pub fn route_end(value: &str) -> Result<(), String> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let ok = match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => prefix.is_none_or(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u8>().is_ok_and(|n| n <= max_prefix(ip))
        }),
        Err(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "route or rule end \"{}\" is not an IP address or prefix",
            show(value)
        ))
    }
}

/// The longest prefix of the address's family (32, 128).
pub fn max_prefix(ip: std::net::IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// An address's prefix length: at most 32 (IPv4) or 128 (IPv6).
pub fn prefix(ip: std::net::IpAddr, prefix: u8) -> Result<(), String> {
    if prefix <= max_prefix(ip) {
        Ok(())
    } else {
        Err(format!(
            "prefix /{prefix} is longer than {} bits for {ip}",
            max_prefix(ip)
        ))
    }
}

/// A DNS search domain: the host-name rule ([`validate_hostname`]), one domain per value (a
/// list separated by commas or spaces is several values).
pub fn search_domain(name: &str) -> Result<(), String> {
    validate_hostname(name)
        .map(|_| ())
        .map_err(|why| format!("search domain \"{}\" refused: {why}", show(name)))
}

/// A bonding mode as the context holds it: the kernel's name ([`bond_mode_name`] normalizes
/// numbers and case); the name on success.
pub fn bond_mode(raw: &str) -> Result<&'static str, String> {
    bond_mode_name(raw).ok_or_else(|| {
        format!(
            "bonding mode \"{}\" is not one of balance-rr, active-backup, balance-xor, \
             broadcast, 802.3ad, balance-tlb, balance-alb (or 0 to 6)",
            show(raw)
        )
    })
}

/// A bonding option (sysfs name, `bond_` prefix removed) and its value: the name 1..=32 of
/// `[a-z0-9_]`, the value 1..=256 of letters, digits and `. _ : , + / -` (`layer3+4`,
/// `10.0.0.1,10.0.0.2`, a MAC): nothing a renderer's format or a shell would read as syntax.
pub fn bond_option(key: &str, value: &str) -> Result<(), String> {
    let key_ok = !key.is_empty()
        && key.len() <= 32
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !key_ok {
        return Err(format!(
            "bonding option name \"{}\" is not 1 to 32 of a-z, 0-9 and '_'",
            show(key)
        ));
    }
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b',' | b'+' | b'/' | b'-')
        });
    if value_ok {
        Ok(())
    } else {
        Err(format!(
            "bonding option {key} value \"{}\" is not 1 to 256 letters, digits and '._:,+/-'",
            show(value)
        ))
    }
}

/// A yes/no value (a bridge's `stp`): `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.
pub fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "\"{}\" is not true/false, yes/no, on/off or 1/0",
            show(value)
        )),
    }
}

/// An 802.1Q VLAN id: 1..=4094 (0 and 4095 are reserved).
pub fn vlan_id(id: u16) -> Result<(), String> {
    if (1..=4094).contains(&id) {
        Ok(())
    } else {
        Err(format!("VLAN id {id} is not 1 to 4094"))
    }
}

/// Smallest and largest MTU a link may be given (IPv4's minimum; the largest the kernel's
/// 16-bit length field allows).
pub const MTU_MIN: u32 = 68;
pub const MTU_MAX: u32 = 65535;

/// An MTU: [`MTU_MIN`]..=[`MTU_MAX`].
pub fn mtu(mtu: u32) -> Result<(), String> {
    if (MTU_MIN..=MTU_MAX).contains(&mtu) {
        Ok(())
    } else {
        Err(format!("MTU {mtu} is not {MTU_MIN} to {MTU_MAX}"))
    }
}

/// Longest sudo rule taken.
pub const SUDO_RULE_MAX: usize = 4096;

/// A sudoers rule for one user, the part after the user name (`ALL=(ALL) NOPASSWD:ALL`), as
/// sudoers(5) reads a user specification: a host list, `=`, an optional runas list in
/// parentheses, then commands. Refused: control characters (a newline would start another
/// rule), a trailing backslash (sudoers' line continuation: the next user's rule would be
/// joined to it), an unbalanced parenthesis, no `=` after a host list, and anything longer
/// than [`SUDO_RULE_MAX`]. This is the check preroot makes on its own; apply also runs
/// `visudo -c` on the whole file when the root has it.
pub fn sudo_rule(rule: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("sudo rule \"{}\" refused: {why}", show(rule)));
    let trimmed = rule.trim();
    if trimmed.is_empty() {
        return bad("empty");
    }
    if rule.len() > SUDO_RULE_MAX {
        return bad(&format!("longer than {SUDO_RULE_MAX} bytes"));
    }
    if rule.chars().any(char::is_control) {
        return bad("it holds a control character (a newline would start another rule)");
    }
    if trimmed.ends_with('\\') {
        return bad("it ends with a backslash, which joins the next line to it");
    }
    let Some((hosts, rest)) = trimmed.split_once('=') else {
        return bad("no '=' after a host list (HOSTS=(RUNAS) COMMANDS)");
    };
    if hosts.trim().is_empty() || rest.trim().is_empty() {
        return bad("a host list, '=' and commands are needed (HOSTS=(RUNAS) COMMANDS)");
    }
    let mut depth = 0u32;
    for c in trimmed.chars() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' if depth == 0 => return bad("a ')' without its '('"),
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if depth != 0 {
        return bad("a '(' without its ')'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac("FA:16:3E:00:00:01").as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        assert_eq!(
            normalize_mac("fa-16-3e-00-00-01\n").as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        assert_eq!(normalize_mac("fa:16:3e:00:00"), None);
        assert_eq!(normalize_mac("fa:16:3e:00:00:0g"), None);
    }

    #[test]
    fn bond_modes() {
        assert_eq!(bond_mode_name("4"), Some("802.3ad"));
        assert_eq!(bond_mode_name("Active-Backup"), Some("active-backup"));
        assert_eq!(bond_mode_name("7"), None);
        assert_eq!(bond_mode_name("lacp"), None);
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            validate_hostname("Foo.Example.com.").as_deref(),
            Ok("foo.example.com")
        );
        assert_eq!(
            validate_hostname("test_instance-kubevirt").as_deref(),
            Ok("test_instance-kubevirt")
        );
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a b",
            "a/b",
            "a\nb",
            &"a".repeat(64),
            &"a.".repeat(130),
        ] {
            assert!(validate_hostname(bad).is_err(), "case {bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["eth0", "enp0s31f6", "bond0.602", "br-ex", "ib0:1", "a"] {
            assert!(ifname(good).is_ok(), "case {good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "all",
            "default",
            "42",
            "eth0\n",
            "a/b",
            "[Match]",
            "a;b",
            "a b",
            "a\0b",
            "a[Match]",
            "eno1;reboot",
            "sixteen-chars-xx",
        ] {
            let e = ifname(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.contains('\0'), "case {bad:?}: {e}");
        }
    }

    #[test]
    fn network_values() {
        for good in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.0.2.1",
            "::/0",
            "2001:db8::/32",
            "fe80::1",
        ] {
            assert!(route_end(good).is_ok(), "case {good}");
        }
        for bad in [
            "",
            "default",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/8\n[Network]",
            "[Match]",
            "1.2.3.4;reboot",
            "10.0.0.0/",
            "10.0.0.0 /8",
        ] {
            assert!(route_end(bad).is_err(), "case {bad:?}");
        }
        assert!(mac("52:54:00:ab:CD:01").is_ok());
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:01\n[Match]",
            "5254.00ab.cd01",
        ] {
            assert!(mac(bad).is_err(), "case {bad:?}");
        }
        assert_eq!(bond_mode("4"), Ok("802.3ad"));
        assert!(bond_mode("x;{touch,/tmp/pwned}").is_err());
        assert!(bond_option("xmit_hash_policy", "layer3+4").is_ok());
        assert!(bond_option("arp_ip_target", "10.0.0.1,10.0.0.2").is_ok());
        for (k, v) in [
            ("miimon", "100;reboot"),
            ("miimon", "1 2"),
            ("Mii", "1"),
            ("miimon", ""),
            ("a b", "1"),
            ("miimon", "'x'"),
        ] {
            assert!(bond_option(k, v).is_err(), "case {k}={v}");
        }
        assert_eq!(boolean("Off"), Ok(false));
        assert!(boolean("maybe").is_err());
        assert!(vlan_id(0).is_err() && vlan_id(4095).is_err() && vlan_id(4094).is_ok());
        assert!(mtu(67).is_err() && mtu(1500).is_ok() && mtu(70000).is_err());
        assert!(search_domain("example.com").is_ok());
        let e = search_domain("example.com,corp.local").unwrap_err();
        assert!(e.contains("\"example.com,corp.local\""), "{e}");
        assert!(prefix("10.0.0.1".parse().unwrap(), 33).is_err());
    }

    #[test]
    fn sudo_rules() {
        for good in [
            "ALL=(ALL) NOPASSWD:ALL",
            "ALL=(ALL:ALL) ALL",
            "ALL = (#0) /usr/bin/id",
            "host1,host2=/bin/ls",
        ] {
            assert!(sudo_rule(good).is_ok(), "case {good}");
        }
        for bad in [
            "ALL=(ALL) ALL \\",
            "ALL=(ALL) ALL\nmallory ALL=(ALL) ALL",
            "ALL=(ALL ALL",
            "ALL",
            "=ALL",
            "ALL=",
            "",
            "ALL=(ALL)) ALL",
            "ALL=(ALL) ALL\r",
        ] {
            let e = sudo_rule(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.contains('\r'), "case {bad:?}: {e}");
        }
    }
}
