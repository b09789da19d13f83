#!/bin/bash
# Seeds each fuzz target's corpus (fuzz/corpus/<target>/) from ../shared/fixtures, a few
# images built here, and packets, responses and tables made by seed.py. Idempotent; the
# corpus is not committed (.gitignore).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=${FIXTURES:-$(cd "$HERE/../.." && pwd)/shared/fixtures}
C=$HERE/corpus
SEP=$'\n--8<--\n'
mkdir -p "$C"/{cmdline,label,iso9660,fat,ext4,configdrive,nocloud,opennebula,netconfig,cloudconfig}
mkdir -p "$C"/{dhcp,dhcpclient,dhcp6,dhcp6client,http,mime,base64,gce,ec2,gpt}
mkdir -p "$C"/{mbr,udf,ovf,wireserver,imds,selinux,selinux_regex,rtnl}
mkdir -p "$C"/{digitalocean,vultr,oracle,hetzner,scaleway,alibaba,cloudstack,luks,lvmmeta}

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
# SELinux file contexts: the edge-case policy whole, and windows of Debian's refpolicy, each
# with a substitution file and paths preroot writes (tests/data/selinux).
SEL=$HERE/../tests/data/selinux
SELPATHS=$(cut -f2 "$SEL/debian/expected.tsv" 2>/dev/null | grep '^/' | head -40 || true)
EDGE=$SEL/edge/etc/selinux/edge/contexts/files
{ cat "$EDGE/file_contexts" "$EDGE/file_contexts.homedirs" "$EDGE/file_contexts.local"; printf '%s' "$SEP";
  cat "$EDGE/file_contexts.subs"; printf '%s' "$SEP"; printf '%s\n' "$SELPATHS"; } | seed selinux
DEB=$SEL/debian/etc/selinux/default/contexts/files
for start in 1 800 1600 2400 3200 4000 4800; do
  { sed -n "${start},$((start + 40))p" "$DEB/file_contexts"; printf '%s' "$SEP";
    cat "$DEB/file_contexts.subs_dist"; printf '%s' "$SEP"; printf '%s\n' "$SELPATHS"; } | seed selinux
done
# Every 25th regex of the policy, each with a path made of its letters, slashes and dots.
cut -f1 "$DEB/file_contexts" | grep '^/' | awk 'NR % 25 == 1' | while IFS= read -r re; do
  printf '%s\n%s' "$re" "$(printf '%s' "$re" | tr -cd 'a-z/.-')" | seed selinux_regex
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
# UDF: Azure's provisioning medium as genisoimage makes it (UDF 1.02, files) and empty
# mkudffs volumes (2.01: Extended File Entries, data in the ICB), in udf's sparse form.
AZ=$HERE/../tests/fixtures/platforms/azure
if command -v genisoimage >/dev/null; then
  mkdir -p "$tmp/udf/sub"; cp "$AZ/ovf-env.xml" "$tmp/udf/"; echo x > "$tmp/udf/sub/f"
  genisoimage -quiet -udf -V rd_rdfe_stable -o "$tmp/udf.iso" "$tmp/udf" 2>/dev/null
  python3 "$HERE/udf-seed.py" "$tmp/udf.iso" | seed udf
fi
if command -v mkudffs >/dev/null; then
  for rev in 1.02 2.01; do
    rm -f "$tmp/m.img"; truncate -s 2M "$tmp/m.img"
    mkudffs -b 2048 -m hd --udfrev=$rev --uuid=0123456789abcdef -l rd_rdfe_stable "$tmp/m.img" >/dev/null
    python3 "$HERE/udf-seed.py" "$tmp/m.img" | seed udf
  done
fi
# The metadata services of issue 20, from their fixtures: documents as fetched; trees as
# "path\nbody" documents (alibaba below latest/, cloudstack and exoscale below their API
# version after a flavor byte, the password server's answer last).
PF=$HERE/../tests/fixtures/platforms
seed digitalocean < "$PF/digitalocean/metadata/v1.json"
seed vultr < "$PF/vultr/v1.json"
{ cat "$PF/oracle/opc/v2/instance.json"; printf '%s' "$SEP"; cat "$PF/oracle/opc/v2/vnics.json"; } | seed oracle
{ cat "$PF/hetzner/hetzner/v1/metadata.yaml"; printf '%s' "$SEP"; cat "$PF/hetzner/hetzner/v1/userdata";
  printf '%s' "$SEP"; cat "$PF/hetzner/hetzner/v1/metadata/private-networks.yaml"; } | seed hetzner
{ cat "$PF/scaleway/conf.json"; printf '%s' "$SEP"; cat "$PF/scaleway/user_data/cloud-init"; } | seed scaleway
tree_docs() {  # tree_docs DIR: every file below DIR as "relative path\nbody", SEP between
  local first=1 f
  while IFS= read -r f; do
    [ $first = 1 ] || printf '%s' "$SEP"; first=0
    printf '%s\n' "$f"; cat "$1/$f"
  done < <(cd "$1" && find . -type f | sed 's|^\./||' | sort)
}
tree_docs "$PF/alibaba/latest" | seed alibaba
for pw in "" .saved .empty .bad_request; do
  [ -f "$PF/cloudstack/password-server/send_my_password$pw" ] || continue
  { printf '\000'; tree_docs "$PF/cloudstack/latest"; printf '%s' "$SEP";
    cat "$PF/cloudstack/password-server/send_my_password$pw"; } | seed cloudstack
done
{ printf '\001'; tree_docs "$PF/exoscale/1.0"; printf '%s' "$SEP";
  cat "$PF/exoscale/password-server/send_my_password"; } | seed cloudstack
for f in "$AZ"/ovf-env*.xml; do [ ! -f "$f" ] || seed ovf < "$f"; done
# IMDS: the fixture, and one with secondary and IPv6 addresses, a dashed MAC, odd types.
[ ! -f "$AZ/imds-instance.json" ] || seed imds < "$AZ/imds-instance.json"
printf '%s' '{"compute": {"vmId": "v", "name": "n", "osProfile": {"adminUsername": 7,
 "disablePasswordAuthentication": "false"}, "publicKeys": [{"keyData": "ssh-rsa K"}, {}]},
 "network": {"interface": [{"macAddress": "00-0D-3A-04-75-98", "ipv4": {"ipAddress":
 [{"privateIpAddress": "10.0.0.4"}, {"privateIpAddress": "10.0.0.5"}], "subnet": [{"prefix": 24}]},
 "ipv6": {"ipAddress": [{"privateIpAddress": "fd00::4"}], "subnet": [{"prefix": "64"}]}}, "x"]}}' | seed imds
for f in "$AZ"/goalstate*.xml; do
  [ -f "$f" ] || continue
  seed wireserver < "$f"  # a goal state alone, and a conversation: 200 goal state, 200 to the report
  { printf '\001'; cat "$f"; printf '%s\001' "$SEP"; } | seed wireserver
done
if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
  truncate -s 1M "$tmp/fat.img"; mkfs.vfat --invariant -n CONFIG-2 "$tmp/fat.img" >/dev/null
  mcopy -s -i "$tmp/fat.img" "$tmp/tree/openstack" ::/ 2>/dev/null
  seed fat < "$tmp/fat.img"; seed label < "$tmp/fat.img"
fi
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 1M "$tmp/ext4.img"; mkfs.ext4 -q -U 11111111-2222-3333-4444-555555555555 -E hash_seed=11111111-2222-3333-4444-555555555555 -L config-2 "$tmp/ext4.img" 2>/dev/null
  head -c 4096 "$tmp/ext4.img" | seed label
  # Whole small seeds for the ext2/3/4 reader (a NoCloud seed with the config drive tree in
  # it), cut after their last non-zero KiB: the reader must cope with a short image anyway.
  mkdir -p "$tmp/seed" && cp -r "$tmp/tree/openstack" "$tmp/seed/"
  printf 'instance-id: i-1\nlocal-hostname: h\n' > "$tmp/seed/meta-data"
  printf '#cloud-config\nhostname: h\n' > "$tmp/seed/user-data"
  find "$tmp/seed" -exec touch -h -d @1700000000 {} +
  for spec in 'ext2|-N 16 -I 128|64K' 'ext2|-N 16 -r 0|64K' 'ext3|-N 16|1M' \
    'ext4|-N 16 -O ^has_journal|128K' 'ext4|-N 16 -O ^has_journal,inline_data|128K' \
    'ext4|-N 16 -O ^has_journal,^64bit,^metadata_csum|64K' 'ext4|-N 16 -b 4096 -O ^has_journal|256K'; do
    IFS='|' read -r fs opts size <<< "$spec"
    rm -f "$tmp/x.img"
    # shellcheck disable=SC2086 # $opts is a list of options
    mkfs.$fs -q -F -L cidata -U 11111111-2222-3333-4444-555555555555 \
      -E hash_seed=11111111-2222-3333-4444-555555555555 $opts -d "$tmp/seed" "$tmp/x.img" "$size" \
      >/dev/null 2>&1 || continue
    # mkfs copies each file's ctime (which touch cannot set) and atime (which the previous
    # mkfs moved by reading the file): pin both, so seeds repeat.
    { (cd "$tmp/seed" && find . -mindepth 1 | sed 's|^\.||') && echo /; } |
      sed 's|.*|sif & ctime @1700000000\nsif & atime @1700000000|' |
      debugfs -w -f - "$tmp/x.img" >/dev/null 2>&1 || true
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); n = -(-len(d.rstrip(b"\0")) // 1024) * 1024
sys.stdout.buffer.write(d[:n])' "$tmp/x.img" | seed ext4
  done
fi
# LUKS2 headers as cryptsetup writes them (no device-mapper needed to format an image file):
# both copies (the first 2 x hdr_size bytes); a token, a label, 64 KiB metadata; and LUKS1.
if command -v cryptsetup >/dev/null; then
  printf secret > "$tmp/luks.key"
  n=0
  for opts in "--sector-size 4096" "--sector-size 512 --label root" \
      "--sector-size 4096 --luks2-metadata-size 64k --luks2-keyslots-size 1m"; do
    n=$((n + 1)); truncate -s 32M "$tmp/l$n.img"
    cryptsetup luksFormat -q --type luks2 $opts --key-file "$tmp/luks.key" --pbkdf pbkdf2 \
      --pbkdf-force-iterations 1000 --uuid 9e59448b-e229-4593-baca-628a759a6b8f "$tmp/l$n.img"
  done
  printf '{"type":"systemd-tpm2","keyslots":["0"],"tpm2-blob":"AA==","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"00","tpm2-pin":false}' > "$tmp/tok.json"
  cryptsetup token import --json-file "$tmp/tok.json" "$tmp/l1.img"
  head -c 32768 "$tmp/l1.img" | seed luks; head -c 32768 "$tmp/l2.img" | seed luks
  head -c 131072 "$tmp/l3.img" | seed luks
  truncate -s 8M "$tmp/l4.img"
  cryptsetup luksFormat -q --type luks1 --key-file "$tmp/luks.key" --pbkdf-force-iterations 1000 "$tmp/l4.img"
  head -c 4096 "$tmp/l4.img" | seed luks
  printf 'root=/dev/mapper/luks-x rd.luks.key=9e59448b-e229-4593-baca-628a759a6b8f=/etc/k:UUID=1 luks.key=/k\n' | seed luks
fi
# LVM metadata text (the Atomic VG, as lvm2 2.03 writes it), and as root with loop devices a
# real PV's first 1 MiB + 64 KiB (label, metadata area) after pvcreate/vgcreate/lvcreate,
# made without activating anything (--driverloaded n: no device-mapper needed).
printf '#\natomicos {\nid = "x"\nseqno = 3\nextent_size = 8192\nphysical_volumes {\npv0 {\nid = "Abcdef-ghij"\ndevice = "/dev/vda2"\ndev_size = 7727104\npe_start = 2048\npe_count = 943\n}\n}\nlogical_volumes {\nroot {\nsegment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 447\ntype = "striped"\nstripe_count = 1\nstripes = [\n"pv0", 0\n]\n}\n}\n}\n}\ncontents = "Text Format Volume Group"\nversion = 1\n' | seed lvmmeta
if [ "$(id -u)" = 0 ] && command -v lvm >/dev/null && command -v losetup >/dev/null; then
  truncate -s 64M "$tmp/pv.img"
  if lo=$(losetup -f --show "$tmp/pv.img" 2>/dev/null); then
    cfg='devices { use_devicesfile = 0 } backup { backup = 0 archive = 0 }'
    { lvm pvcreate -q --devices "$lo" --config "$cfg" "$lo" &&
      lvm vgcreate -q --devices "$lo" --config "$cfg" seedvg "$lo" &&
      lvm lvcreate -q -an -Zn --driverloaded n --devices "$lo" --config "$cfg" -l 10 -n root seedvg; } >/dev/null 2>&1 || true
    losetup -d "$lo"
    head -c 1114112 "$tmp/pv.img" | seed lvmmeta
  fi
fi
# DHCPv6: every captured message (tests/data/dhcp6/README.md), and each captured exchange
# as the client target's conversation: a mode byte, then the server's answers, each after a
# byte of time (11 = 1.1 s, past the first SOLICIT's RT, so a REQUEST goes out in between).
D6=$HERE/../tests/data/dhcp6
for f in "$D6"/*/*.bin; do seed dhcp6 < "$f"; done
conv() { # mode, then (step, file) pairs
  printf "\\x$1"; shift; local first=1
  while [ $# -gt 0 ]; do
    [ $first = 1 ] || printf '%s' "$SEP"; first=0
    printf "\\x$1"; cat "$2"; shift 2
  done
}
conv 00 00 "$D6/rapid-commit/01-in-reply.bin" | seed dhcp6client
conv 01 00 "$D6/four-message/01-in-advertise.bin" 0b "$D6/four-message/03-in-reply.bin" | seed dhcp6client
conv 01 00 "$D6/authoritative/01-in-advertise.bin" 00 "$D6/authoritative/03-in-reply.bin" | seed dhcp6client
conv 02 00 "$D6/stateless/01-in-reply.bin" | seed dhcp6client
conv 01 00 "$D6/no-addresses/01-in-advertise.bin" 0b "$D6/no-addresses/03-in-advertise.bin" | seed dhcp6client
conv 00 00 "$D6/no-addresses-rapid/01-in-reply.bin" 0b "$D6/no-addresses-rapid/03-in-reply.bin" | seed dhcp6client
# rtnl: the kernel's netlink answers captured in a namespace (tests/data/rtnl/README.md).
for f in "$HERE"/../tests/data/rtnl/*.bin; do seed rtnl < "$f"; done
cat "$HERE"/../tests/data/rtnl/addr6-0.bin "$HERE"/../tests/data/rtnl/route6-0.bin | seed rtnl

# DHCP packets, HTTP responses, user data, base64, the GCE document, the EC2 tree, GPT and MBR
# tables made by sgdisk/sfdisk (seed.py).
python3 "$HERE/seed.py" "$FIX" "$C" "$tmp"
echo "seeded $(find "$C" -type f | wc -l) inputs under $C"
