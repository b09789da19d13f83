#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Captures the kernel's answers to the network stage's netlink dumps (net/rtnl.rs) in a
# namespace world made here and deleted after: a client veth end with optimistic DAD, a
# DHCPv6-style static /128 still in DAD, and a peer running dnsmasq with RAs (M and O flags,
# a prefix) so the client's link carries IF_RA_* flags and an RA default route. Writes one
# file per datagram: addr6-N.bin (RTM_GETADDR, AF_INET6), link6-N.bin (RTM_GETLINK,
# AF_INET6), route6-N.bin (RTM_GETROUTE, AF_INET6), getroute.bin (the route to
# fd00:ec2::254 out of eth0: via the RA's router) and error.bin (an NLMSG_ERROR: a route
# lookup out of an interface that does not exist). Needs root, ip, dnsmasq, python3.
# Usage: tests/data/rtnl/capture.sh [OUTDIR]   (default: this directory)
set -euo pipefail
OUT=${1:-$(cd "$(dirname "$0")" && pwd)}
C=rtnlcap-c$$; P=rtnlcap-p$$
ip netns add $C; ip netns add $P
trap 'kill $DM 2>/dev/null || true; ip netns del $C; ip netns del $P' EXIT
ip link add eth0 netns $C address 02:00:00:00:00:01 type veth peer name peer0 netns $P
ip netns exec $P sysctl -qw net.ipv6.conf.peer0.accept_dad=0
ip netns exec $C sysctl -qw net.ipv6.conf.eth0.optimistic_dad=1 net.ipv6.conf.eth0.use_optimistic=1
ip -n $P link set peer0 up; ip -n $P addr add fd77::1/64 dev peer0 nodad
ip netns exec $P dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=0 --conf-file=/dev/null \
  --interface=peer0 --bind-interfaces --enable-ra --dhcp-range=fd77::100,fd77::1ff,64,1h \
  --dhcp-leasefile=/dev/null --pid-file= --user=root 2>/dev/null & DM=$!
sleep 1
ip -n $C link set eth0 up
ip -n $C addr add fd77::5/128 dev eth0 optimistic
for _ in $(seq 50); do ip -n $C -6 route show default | grep -q . && break; sleep 0.1; done
ip netns exec $C python3 - "$OUT" <<'PY'
import os, socket, struct, sys
out = sys.argv[1]
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
s.bind((0, 0))
def ask(kind, body, name, flags=0x301):
    s.send(struct.pack("=IHHII", 16 + len(body), kind, flags, 7, 0) + body)
    n = 0
    while True:
        d = s.recv(65536)
        open(os.path.join(out, "%s-%d.bin" % (name, n)), "wb").write(d)
        n += 1
        off = 0
        while off + 16 <= len(d):
            length, t = struct.unpack_from("=IH", d, off)
            if t in (2, 3) or flags & 0x300 == 0:  # NLMSG_ERROR, NLMSG_DONE, or not a dump
                return
            off += (length + 3) & ~3
ask(22, struct.pack("=BBBBI", 10, 0, 0, 0, 0), "addr6")
ask(18, struct.pack("=BBHiII", 10, 0, 0, 0, 0, 0), "link6")
ask(26, struct.pack("=BBBBBBBBI", 10, 0, 0, 0, 254, 0, 0, 0, 0), "route6")
dst = socket.inet_pton(socket.AF_INET6, "fd00:ec2::254")
oif = socket.if_nametoindex("eth0")
body = (struct.pack("=BBBBBBBBI", 10, 128, 0, 0, 0, 0, 0, 0, 0) + struct.pack("=HH", 20, 1) + dst
        + struct.pack("=HHI", 8, 4, oif))
ask(26, body, "getroute", flags=0x1)
os.rename(os.path.join(out, "getroute-0.bin"), os.path.join(out, "getroute.bin"))
body = struct.pack("=BBBBBBBBI", 10, 128, 0, 0, 0, 0, 0, 0, 0) + struct.pack("=HHI", 8, 4, 9999)
ask(26, body, "error", flags=0x5)
os.rename(os.path.join(out, "error-0.bin"), os.path.join(out, "error.bin"))
PY
ls -l "$OUT"/*.bin
