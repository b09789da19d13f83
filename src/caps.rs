//! Every count cap on what a datasource or the kernel command line may describe, and the one
//! way a cap cuts: the items past it are dropped and the cut is named in one line (a warning in
//! the context, a problem of the command line), never an error and never silent. Byte caps
//! on whole documents are the readers' (a document cut short cannot be parsed: too large is
//! an error naming the file); docs/context.md's "Caps" table lists both kinds, and a test
//! keeps it in step with [`ALL`]. The byte caps that several readers share are here too
//! ([`USER_DATA_BYTES`]), so the loader, the unpacker and the fetch agree on one number. Pure.

/// User data and vendor data as fetched, and anything unpacked or loaded from one document
/// (gzip user data, a cloud-config document): the largest document preroot reads, in bytes.
/// `providers::USERDATA_CAP`, `mime::MAX_UNPACKED` and `yaml::MAX_TEXT` are this number.
pub const USER_DATA_BYTES: usize = 16 << 20;

/// All the injected files of one context together (OpenStack `files`), in bytes: the files
/// past it are dropped with a warning, like a count cap's. [`FILES`] counts files; without
/// this, 64 files of 16 MiB each would put 1 GiB into `/run` (a tmpfs: memory).
pub const INJECTED_BYTES: usize = USER_DATA_BYTES;

/// A cap: at most `max` of `what` are kept, `per` one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub max: usize,
    /// What is counted, plural (`links`).
    pub what: &'static str,
    /// Counted per what (`network description`, `link`).
    pub per: &'static str,
}

impl Cap {
    /// The line that names a cut: `more than 256 links; the rest are dropped`.
    pub fn cut(&self) -> String {
        format!("more than {} {}; the rest are dropped", self.max, self.what)
    }

    /// Is there room for one more after `len`?
    pub fn room(&self, len: usize) -> bool {
        len < self.max
    }

    /// Adds `item` to `list` unless it is there already; when the list is full, leaves it
    /// and returns the line naming the cut.
    pub fn add<T: PartialEq>(&self, list: &mut Vec<T>, item: T) -> Option<String> {
        if list.contains(&item) {
            return None;
        }
        if !self.room(list.len()) {
            return Some(self.cut());
        }
        list.push(item);
        None
    }

    /// Cuts `items` to the cap; the line naming the cut when it cut.
    pub fn truncate<T>(&self, items: &mut Vec<T>) -> Option<String> {
        if items.len() <= self.max {
            return None;
        }
        let given = items.len();
        items.truncate(self.max);
        Some(format!(
            "{given} {}, more than {}; the rest are dropped",
            self.what, self.max
        ))
    }
}

/// Links (NICs, bonds, VLANs, bridges) of one network description.
pub const LINKS: Cap = Cap {
    max: 256,
    what: "links",
    per: "network description",
};
/// SSH keys of one context.
pub const SSH_KEYS: Cap = Cap {
    max: 256,
    what: "ssh keys",
    per: "context",
};
/// Files to inject (OpenStack `files`).
pub const FILES: Cap = Cap {
    max: 64,
    what: "injected files",
    per: "context",
};
/// Static addresses of one link.
pub const ADDRESSES: Cap = Cap {
    max: 64,
    what: "addresses",
    per: "link",
};
/// Routes of one link.
pub const ROUTES: Cap = Cap {
    max: 128,
    what: "routes",
    per: "link",
};
/// Routing-policy rules of one link.
pub const RULES: Cap = Cap {
    max: 128,
    what: "routing rules",
    per: "link",
};
/// Name servers of one list (a link's, or the global one).
pub const NAMESERVERS: Cap = Cap {
    max: 16,
    what: "name servers",
    per: "list",
};
/// Search domains of one list.
pub const SEARCH_DOMAINS: Cap = Cap {
    max: 16,
    what: "search domains",
    per: "list",
};
/// OpenNebula `ETH<n>` groups.
pub const ETH_GROUPS: Cap = Cap {
    max: 64,
    what: "ETH<n> groups",
    per: "context.sh",
};
/// `ip=` entries of the kernel command line (dracut has no limit; 32 NICs is generous).
pub const IP_ENTRIES: Cap = Cap {
    max: 32,
    what: "ip= entries",
    per: "command line",
};
/// `ifname=` entries of the kernel command line.
pub const IFNAMES: Cap = Cap {
    max: 64,
    what: "ifname= entries",
    per: "command line",
};
/// `nameserver=` entries of the kernel command line (glibc reads only 3 anyway).
pub const CMDLINE_NAMESERVERS: Cap = Cap {
    max: 16,
    what: "nameserver= entries",
    per: "command line",
};
/// Routers or DNS servers of one DHCPv4 option (3, 6).
pub const DHCP_ADDRESSES: Cap = Cap {
    max: 8,
    what: "addresses",
    per: "DHCPv4 option",
};
/// Classless static routes (option 121) of one DHCPv4 lease.
pub const DHCP_ROUTES: Cap = Cap {
    max: 64,
    what: "classless routes",
    per: "DHCPv4 lease",
};
/// IA_NA options of one DHCPv6 message (we ask for one).
pub const DHCP6_IA_NA: Cap = Cap {
    max: 4,
    what: "IA_NA options",
    per: "DHCPv6 message",
};
/// Addresses of one DHCPv6 IA_NA.
pub const DHCP6_ADDRESSES: Cap = Cap {
    max: 8,
    what: "addresses",
    per: "DHCPv6 IA_NA",
};
/// DNS servers of one DHCPv6 message.
pub const DHCP6_DNS: Cap = Cap {
    max: 8,
    what: "DNS servers",
    per: "DHCPv6 message",
};
/// Search domains of one DHCPv6 message.
pub const DHCP6_DOMAINS: Cap = Cap {
    max: 8,
    what: "search domains",
    per: "DHCPv6 message",
};
/// Option codes of one DHCPv6 Option Request.
pub const DHCP6_ORO: Cap = Cap {
    max: 32,
    what: "requested options",
    per: "DHCPv6 message",
};
/// Entries (IPv6 addresses, links) of one netlink dump the network stage reads.
pub const NETLINK_DUMP: Cap = Cap {
    max: 4096,
    what: "entries",
    per: "netlink dump",
};

/// Every count cap, for the docs test.
pub const ALL: &[Cap] = &[
    LINKS,
    SSH_KEYS,
    FILES,
    ADDRESSES,
    ROUTES,
    RULES,
    NAMESERVERS,
    SEARCH_DOMAINS,
    ETH_GROUPS,
    IP_ENTRIES,
    IFNAMES,
    CMDLINE_NAMESERVERS,
    DHCP_ADDRESSES,
    DHCP_ROUTES,
    DHCP6_IA_NA,
    DHCP6_ADDRESSES,
    DHCP6_DNS,
    DHCP6_DOMAINS,
    DHCP6_ORO,
    NETLINK_DUMP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_name_what_they_cut() {
        let mut v: Vec<u32> = (0..300).collect();
        assert_eq!(
            LINKS.truncate(&mut v).as_deref(),
            Some("300 links, more than 256; the rest are dropped")
        );
        assert_eq!(v.len(), 256);
        assert_eq!(LINKS.truncate(&mut v), None, "at the cap: no cut");
        assert!(LINKS.room(255) && !LINKS.room(256));
        let small = Cap {
            max: 2,
            what: "things",
            per: "test",
        };
        let mut list = vec![1];
        assert_eq!(
            small.add(&mut list, 1),
            None,
            "a duplicate is left out quietly"
        );
        assert_eq!(small.add(&mut list, 2), None);
        assert_eq!(
            small.add(&mut list, 3).as_deref(),
            Some("more than 2 things; the rest are dropped")
        );
        assert_eq!(list, [1, 2]);
        assert_eq!(
            SSH_KEYS.cut(),
            "more than 256 ssh keys; the rest are dropped"
        );
    }

    #[test]
    fn docs_list_every_cap() {
        let docs = include_str!("../docs/context.md");
        let table = docs
            .split("## Caps")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or("");
        for cap in ALL {
            let row = format!("| {} per {} | {} |", cap.what, cap.per, cap.max);
            assert!(
                table.contains(&row),
                "docs/context.md Caps lacks the row {row:?}"
            );
        }
    }
}
