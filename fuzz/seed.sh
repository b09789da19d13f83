#!/bin/bash
# Seeds each fuzz target's corpus (fuzz/corpus/<target>/) from ../shared/fixtures, a few
# images built here, and packets, responses and tables made by seed.py. Idempotent; the
# corpus is not committed (.gitignore).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=${FIXTURES:-$(cd "$HERE/../.." && pwd)/shared/fixtures}
C=$HERE/corpus
SEP=$'\n--8<--\n'
mkdir -p "$C"/{cmdline,label,iso9660,fat,configdrive,nocloud,opennebula,netconfig,cloudconfig}
mkdir -p "$C"/{dhcp,dhcpclient,http,mime,base64,gce,ec2,gpt,mbr}

# Named by content (as libFuzzer names its own finds), so seeding again adds nothing.
seed() {
  local f; f=$(mktemp "$C/$1/.new-XXXXXXXX"); cat > "$f"
  mv "$f" "$C/$1/$(sha1sum < "$f" | cut -c1-40)"
}
opt() { if [ -f "$1" ]; then cat "$1"; fi; }

for d in "$FIX"/openstack/*/input "$FIX"/malformed/*/input; do
  v=$(ls -d "$d"/openstack/latest "$d"/openstack/2* 2>/dev/null | head -1) || true
  [ -n "$v" ] || continue
  { opt "$v/meta_data.json"; printf '%s' "$SEP"; opt "$v/network_data.json";
    printf '%s' "$SEP"; opt "$v/vendor_data.json"; } | seed configdrive
done
for d in "$FIX"/nocloud/*/input "$FIX"/malformed/nocloud*/input; do
  { opt "$d/meta-data"; printf '%s' "$SEP"; opt "$d/network-config"; } | seed nocloud
done
for f in "$FIX"/opennebula/*/input/context.sh "$FIX"/malformed/opennebula*/input/context.sh; do
  [ ! -f "$f" ] || seed opennebula < "$f"
done
for f in "$FIX"/netconfig/*/input/network-config "$FIX"/nocloud/*/input/network-config; do
  [ ! -f "$f" ] || seed netconfig < "$f"
done
for f in "$FIX"/multipart/*/input/user_data "$FIX"/multipart/*/input/openstack/latest/user_data; do
  [ ! -f "$f" ] || seed cloudconfig < "$f"
done
for line in 'root=UUID=1234 ro quiet' 'ip=dhcp rd.neednet=1' \
  'ip=192.0.2.10::192.0.2.1:255.255.255.0:host:eth0:none:192.0.2.53' \
  'ip=[2001:db8::10]::[2001:db8::1]:64::eth0:none ifname=eth0:52:54:00:12:34:56' \
  'ds=nocloud;s=http://10.0.0.1/ preroot.platform=openstack preroot.timeout=5 "quoted arg=a b"' \
  'ostree=/ostree/boot.1/fedora/abc/0 root=/dev/mapper/atomicos-root nameserver=192.0.2.53'; do
  printf '%s\n' "$line" | seed cmdline
done
# Small images of each filesystem the label probes and readers know.
export SOURCE_DATE_EPOCH=1700000000 E2FSPROGS_FAKE_TIME=1700000000  # reproducible images
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tree/openstack/latest"; echo '{"uuid":"x","hostname":"h"}' > "$tmp/tree/openstack/latest/meta_data.json"
find "$tmp/tree" -exec touch -h -d @1700000000 {} +
if command -v xorriso >/dev/null; then
  xorriso -as mkisofs -quiet -R -J -V config-2 -o "$tmp/cd.iso" "$tmp/tree" 2>/dev/null
  seed iso9660 < "$tmp/cd.iso"; seed label < "$tmp/cd.iso"
fi
if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
  truncate -s 1M "$tmp/fat.img"; mkfs.vfat --invariant -n CONFIG-2 "$tmp/fat.img" >/dev/null
  mcopy -s -i "$tmp/fat.img" "$tmp/tree/openstack" ::/ 2>/dev/null
  seed fat < "$tmp/fat.img"; seed label < "$tmp/fat.img"
fi
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 1M "$tmp/ext4.img"; mkfs.ext4 -q -U 11111111-2222-3333-4444-555555555555 -E hash_seed=11111111-2222-3333-4444-555555555555 -L config-2 "$tmp/ext4.img" 2>/dev/null
  head -c 4096 "$tmp/ext4.img" | seed label
fi
# DHCP packets, HTTP responses, user data, base64, the GCE document, the EC2 tree, GPT and MBR
# tables made by sgdisk/sfdisk (seed.py).
python3 "$HERE/seed.py" "$FIX" "$C" "$tmp"
echo "seeded $(find "$C" -type f | wc -l) inputs under $C"
