#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# net-boot.sh PLATFORM FIXTURE_INPUT: boot the host's kernel under QEMU (TCG) with a tiny
# busybox initramfs holding the static preroot, on "-netdev user,restrict=on" (no packet
# leaves the machine). The guest's preroot brings up eth0 with its own DHCP against slirp's
# server, and reads PLATFORM's metadata service at 169.254.169.254, which guestfwd hands to
# qemu/imds.py on 127.0.0.1. Prints the fetched context's key fields and the guest timings.
# Needs: qemu-system-x86_64, socat, busybox, cpio, python3, a kernel in /boot, and the static
# binary (make static). A quick check by hand; the dracut boots are tests/qemu.rs (issue 4).
set -euo pipefail
PLATFORM=${1:?platform}; INPUT=${2:?fixture input dir}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$HERE/../target/x86_64-unknown-linux-musl/release/preroot}
KVER=${KVER:-$(ls /lib/modules | grep -- '-amd64$' | sort -V | tail -1)}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
W=$(mktemp -d); trap 'kill ${SRV:-} 2>/dev/null || true; rm -rf "$W"' EXIT
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
python3 "$HERE/imds.py" "$INPUT" "$PORT" $EC2 2> "$W/imds.log" & SRV=$!
sleep 0.5
LOG=$W/console.log
set +e
timeout --kill-after=10 ${TMO:-240} qemu-system-x86_64 -accel tcg,thread=multi -cpu max,-svm,-vmx \
  -machine q35 -m 512 -smp 2 -nodefaults -display none -monitor none -no-reboot \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$W/initrd.img" -append "console=ttyS0 panic=-1 rdinit=/init quiet" \
  -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:127.0.0.1:$PORT" \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 -serial "file:$LOG"
echo "qemu rc=$?"
set -e
grep -a 'NETBOOT \|preroot: ' "$LOG" | tr -d '\r'
sed -n '/NETBOOT-JSON-BEGIN/,/NETBOOT-JSON-END/p' "$LOG" | tr -d '\r' | sed '1d;$d' > "$W/ctx.json"
python3 - "$W/ctx.json" "$PLATFORM" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print("platform", c["platform"], "instance_id", c.get("instance_id"), "hostname", c.get("hostname"))
print("dhcp", json.dumps(c["extra"].get("dhcp")))
if c["platform"] != sys.argv[2] or not c.get("instance_id") or not c["extra"].get("dhcp"):
    sys.exit("net-boot: the guest's context is not the expected one")
PY
echo "--- imds requests"; grep -c '"' "$W/imds.log" || true
