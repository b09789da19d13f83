//! Which NICs to run DHCP on (pure): those named by `--iface`; else those `ip=` names with a
//! DHCPv4 method (by name, by `ifname=NAME:MAC` alias, or by MAC); else every Ethernet NIC
//! (see [`super::link::Nic::ethernet`]). All candidates are raced at once.

use super::link::Nic;
use crate::cmdline::{Cmdline, IpInterface, IpMethod};

pub fn candidates(nics: &[Nic], cmd: &Cmdline, ifaces: &[String]) -> Vec<Nic> {
    let by_name = |name: &str| -> Option<Nic> {
        if let Some(n) = nics.iter().find(|n| n.name == name) {
            return Some(n.clone());
        }
        // `ifname=NAME:MAC`: the NIC that will be called NAME is the one with that MAC.
        let mac = cmd.ifnames.iter().find(|i| i.name == name)?.mac.clone();
        nics.iter().find(|n| n.mac_text() == mac).cloned()
    };
    let mut out: Vec<Nic> = Vec::new();
    let mut push = |n: Option<Nic>| {
        if let Some(n) = n {
            if !out.iter().any(|o| o.ifindex == n.ifindex) {
                out.push(n);
            }
        }
    };
    if !ifaces.is_empty() {
        for i in ifaces {
            push(by_name(i));
        }
        return out;
    }
    let mut named = false;
    for ip in &cmd.ip {
        if !ip.methods.contains(&IpMethod::Dhcp4) {
            continue;
        }
        match &ip.interface {
            Some(IpInterface::Name(n)) => {
                named = true;
                push(by_name(n));
            }
            Some(IpInterface::Mac(m)) => {
                named = true;
                push(nics.iter().find(|n| &n.mac_text() == m).cloned());
            }
            None => {}
        }
    }
    if named {
        return out;
    }
    for n in nics.iter().filter(|n| n.ethernet) {
        push(Some(n.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    fn nic(name: &str, idx: u32, last: u8, ethernet: bool) -> Nic {
        Nic {
            name: name.into(),
            ifindex: idx,
            mac: [2, 0, 0, 0, 0, last],
            up: false,
            ethernet,
        }
    }

    #[test]
    fn choice() {
        let nics = [
            nic("br0", 1, 1, false),
            nic("eth0", 2, 2, true),
            nic("eth1", 3, 3, true),
        ];
        let names = |c: &[Nic]| c.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&candidates(&nics, &parse(""), &[])), ["eth0", "eth1"]);
        assert_eq!(
            names(&candidates(&nics, &parse(""), &["eth1".into()])),
            ["eth1"]
        );
        assert_eq!(
            names(&candidates(&nics, &parse("ip=eth1:dhcp"), &[])),
            ["eth1"]
        );
        assert_eq!(
            names(&candidates(
                &nics,
                &parse("ifname=lan:02:00:00:00:00:02 ip=lan:dhcp"),
                &[]
            )),
            ["eth0"]
        );
        assert_eq!(
            names(&candidates(&nics, &parse("ip=dhcp"), &[])),
            ["eth0", "eth1"]
        );
        assert!(candidates(&nics, &parse("ip=nope:dhcp"), &[]).is_empty());
    }
}
