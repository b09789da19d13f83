#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# net-boot.sh PLATFORM FIXTURE_INPUT: boot the host's kernel under QEMU (TCG) with a tiny
# busybox initramfs holding the static preroot, run `preroot context --platform PLATFORM`
# in it, and print the fetched context's key fields and the guest timings. Two networks:
# - NET=user (default): "-netdev user,restrict=on" (no packet leaves the machine). The guest's
#   preroot brings up eth0 with its own DHCP against slirp's server, and reads the metadata
#   service at 169.254.169.254, which guestfwd hands to qemu/imds.py on 127.0.0.1.
# - NET=ipv6: IPv6 only (slirp's guestfwd cannot reach an IPv6 address). A network namespace
#   made here holds a tap device (the guest's NIC), dnsmasq sending RAs with the M flag and
#   leasing fd77::100..1ff by DHCPv6 (no DHCPv4 at all), and qemu/imds.py bound to EC2's
#   [fd00:ec2::254]:80 (GCE: [fd20:ce::254]); QEMU runs inside that namespace. Nothing is
#   made in the machine's own namespace, and the namespace is deleted at the end.
# CTX_OUT=FILE keeps the guest's context. Boots are serialized with the QEMU harness's lock
# ($PREROOT_QEMU_CACHE/boot.lock, qemu/lib.sh). Needs: qemu-system-x86_64, socat (user),
# ip and dnsmasq (ipv6), busybox, cpio, python3, a kernel in /boot, and the static binary
# (make static). tests/qemu.rs boots NET=ipv6 (`qemu_ipv6_only_net_boot`).
set -euo pipefail
PLATFORM=${1:?platform}; INPUT=${2:?fixture input dir}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../target}/x86_64-unknown-linux-musl/release/preroot}
KVER=${KVER:-$(ls /lib/modules | grep -- '-amd64$' | sort -V | tail -1)}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
NET=${NET:-user}
NS=""
W=$(mktemp -d)
cleanup() {
    kill ${SRV:-} ${DNSMASQ:-} 2>/dev/null || true
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
R=$W/root; mkdir -p "$R/bin" "$R/proc" "$R/dev" "$R/sys" "$R/run" "$R/lib/modules"
cp "$(command -v busybox)" "$R/bin/busybox"; cp "$BIN" "$R/bin/preroot"
for m in virtio_pci virtio_net; do modprobe -S "$KVER" --show-depends $m; done |
  awk '/^insmod/ {print $2}' | awk '!seen[$0]++' > "$R/lib/modules/order"
while read -r m; do cp "$m" "$R/lib/modules/"; done < "$R/lib/modules/order"
sed -i 's|.*/||' "$R/lib/modules/order"
cat > "$R/init" <<INIT
#!/bin/busybox sh
B=/bin/busybox
\$B mount -t proc proc /proc; \$B mount -t devtmpfs dev /dev; \$B mount -t sysfs sys /sys
for m in \$(\$B cat /lib/modules/order); do \$B insmod /lib/modules/\$m; done
echo "NETBOOT start \$(\$B cut -d' ' -f1 /proc/uptime)"
/bin/preroot -v context --platform $PLATFORM --timeout 60 --state-dir /run/preroot > /run/ctx.json
echo "NETBOOT rc=\$? end \$(\$B cut -d' ' -f1 /proc/uptime)"
echo "NETBOOT-JSON-BEGIN"; \$B cat /run/ctx.json; echo "NETBOOT-JSON-END"
\$B poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/initrd.img"
EC2=""; [ "$PLATFORM" = ec2 ] && EC2=--ec2
RUN=()
case $NET in
    user)
        python3 "$HERE/imds.py" "$INPUT" "$PORT" $EC2 2> "$W/imds.log" & SRV=$!
        NETDEV="user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:127.0.0.1:$PORT" ;;
    ipv6)
        case $PLATFORM in ec2) SVC=fd00:ec2::254 ;; gce) SVC=fd20:ce::254 ;; *) echo "NET=ipv6: ec2 or gce" >&2; exit 2 ;; esac
        NS=preroot-net6-$$
        ip netns add "$NS"
        RUN=(ip netns exec "$NS")
        ip -n "$NS" link set lo up
        ip -n "$NS" tuntap add dev tap0 mode tap
        "${RUN[@]}" sysctl -qw net.ipv6.conf.tap0.accept_dad=0
        ip -n "$NS" link set tap0 up
        ip -n "$NS" addr add fd77::1/64 dev tap0 nodad
        ip -n "$NS" addr add "$SVC/128" dev lo nodad
        "${RUN[@]}" dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=0 --conf-file=/dev/null \
            --interface=tap0 --bind-interfaces --enable-ra --dhcp-range=fd77::100,fd77::1ff,64,1h \
            --dhcp-option=option6:dns-server,[fd77::53] --dhcp-leasefile="$W/leases" \
            --pid-file="$W/dnsmasq.pid" --user=root 2> "$W/dnsmasq.log" & DNSMASQ=$!
        "${RUN[@]}" python3 "$HERE/imds.py" "$INPUT" 80 $EC2 --bind "$SVC" 2> "$W/imds.log" & SRV=$!
        NETDEV="tap,id=n0,ifname=tap0,script=no,downscript=no" ;;
    *) echo "NET=$NET: user or ipv6" >&2; exit 2 ;;
esac
sleep 0.5
LOG=$W/console.log
CACHE=${PREROOT_QEMU_CACHE:-/var/cache/preroot-qemu}
mkdir -p "$CACHE"
exec {lockfd}>"$CACHE/boot.lock"
flock "$lockfd"
set +e
t0=$(date +%s%N)
"${RUN[@]}" timeout --kill-after=10 ${TMO:-240} qemu-system-x86_64 -accel tcg,thread=multi -cpu max,-svm,-vmx \
  -machine q35 -m 512 -smp 2 -nodefaults -display none -monitor none -no-reboot \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$W/initrd.img" -append "console=ttyS0 panic=-1 rdinit=/init quiet" \
  -netdev "$NETDEV" -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 -serial "file:$LOG"
echo "qemu rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
set -e
exec {lockfd}>&-
grep -a 'NETBOOT \|preroot: ' "$LOG" | tr -d '\r'
sed -n '/NETBOOT-JSON-BEGIN/,/NETBOOT-JSON-END/p' "$LOG" | tr -d '\r' | sed '1d;$d' > "$W/ctx.json"
if [ -n "${CTX_OUT:-}" ]; then cp "$W/ctx.json" "$CTX_OUT"; fi
python3 - "$W/ctx.json" "$PLATFORM" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    c = json.loads(text)
except ValueError as e:
    sys.exit(f"net-boot: the guest's context (console, between the NETBOOT-JSON lines) is not JSON ({e}):\n"
             + ("\n".join(text.splitlines()[:8]) or "(empty)"))
print("platform", c["platform"], "instance_id", c.get("instance_id"), "hostname", c.get("hostname"))
print("dhcp", json.dumps(c["extra"].get("dhcp")))
if c["platform"] != sys.argv[2] or not c.get("instance_id") or not c["extra"].get("dhcp"):
    sys.exit("net-boot: the guest's context is not the expected one")
PY
echo "--- imds requests"; cat "$W/imds.log" || true
