#!/usr/bin/env python3
"""Seeds for the fuzz targets whose inputs are binary or framed (called by seed.sh):
dhcp, dhcpclient, http, mime, base64, gce, ec2, gpt, mbr. Usage: seed.py FIXTURES CORPUS TMPDIR.
Files are named by content (sha1), so seeding twice adds nothing."""
import base64, gzip, hashlib, json, os, shutil, struct, subprocess, sys

FIX, CORPUS, TMP = sys.argv[1:4]
SEP = b"\n--8<--\n"


def seed(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def files(root):
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            yield os.path.join(dirpath, n)


def read(p):
    with open(p, "rb") as f:
        return f.read()


# --- DHCP: OFFER/ACK as dnsmasq and QEMU's slirp send them, framed in IPv4/UDP. -----------
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_udp(payload, src=bytes([10, 0, 2, 2]), dst=bytes([255] * 4), udp_sum=True):
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", 67, 68, ulen, 0) + payload
    if udp_sum:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
        c = csum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + udp


def dhcp(kind, opts, file_opts=b"", sname_opts=b""):
    mac = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56])
    head = struct.pack("!BBBBIHH4s4s4s4s", 2, 1, 6, 0, 0x1234ABCD, 0, 0x8000,
                       bytes(4), bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]), bytes(4))
    chaddr = mac + bytes(10)
    sname = (sname_opts + b"\xff").ljust(64, b"\0") if sname_opts else bytes(64)
    file = (file_opts + b"\xff").ljust(128, b"\0") if file_opts else bytes(128)
    return head + chaddr + sname + file + bytes([99, 130, 83, 99]) + bytes([53, 1, kind]) + opts + b"\xff"


def opt(code, data):
    return bytes([code, len(data)]) + data


common = (opt(54, bytes([10, 0, 2, 2])) + opt(51, struct.pack("!I", 86400)) +
          opt(1, bytes([255, 255, 255, 0])) + opt(3, bytes([10, 0, 2, 2])) +
          opt(6, bytes([10, 0, 2, 3, 8, 8, 8, 8])))
for kind in (2, 5, 6):
    seed("dhcp", b"\x00" + ip_udp(dhcp(kind, common)))
seed("dhcp", b"\x01" + ip_udp(dhcp(5, common + opt(12, b"node-1\0") + opt(15, b"example.org") +
                                   opt(26, struct.pack("!H", 1450))), udp_sum=False))
routes = bytes([24, 192, 168, 7, 10, 0, 2, 1, 0, 10, 0, 2, 2, 32, 10, 1, 2, 3, 0, 0, 0, 0])
seed("dhcp", b"\x00" + ip_udp(dhcp(5, common + opt(121, routes))))
seed("dhcp", b"\x00" + ip_udp(dhcp(5, opt(52, b"\x03") + opt(54, bytes([10, 0, 2, 2])),
                                   file_opts=opt(3, bytes([10, 0, 2, 2])) + opt(121, routes),
                                   sname_opts=opt(12, b"overloaded"))))
seed("dhcp", b"\x00" + dhcp(5, common))  # the bare message (the parser is also fed directly)
seed("dhcp", b"\x00" + routes)
# A whole conversation for the client: OFFER, then ACK (or NAK, then OFFER and ACK again).
offer, ack, nak = dhcp(2, common), dhcp(5, common + opt(121, routes)), dhcp(6, opt(54, bytes([10, 0, 2, 2])))
seed("dhcpclient", SEP.join([b"\x01" + offer, b"\x01" + ack]))
seed("dhcpclient", SEP.join([b"\x01" + offer, b"\x0a" + nak, b"\x14" + offer, b"\x01" + ack]))

# --- HTTP responses (the first byte chooses where the partial read ends). ------------------
for r in [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
    b'{"uuid":"x","hostname":"h"}',
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nMetadata-Flavor: Google\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nServer: EC2ws\r\n\r\nnot found",
    b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://169.254.169.254/latest/\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600\r\nContent-Length: 56\r\n\r\n"
    b"AQAEAFbCx4Gv4GQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n",
    b"http://169.254.169.254/latest/meta-data/\r\n\r\n",
    # Issue 16: a bare LF in a Location, Content-Length twice (alike and not).
    b"HTTP/1.1 302 Found\r\nLocation: /x\nX-Injected: 1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nokhello",
]:
    for split in (0x80, 0xFF):
        seed("http", bytes([split]) + r)

# --- MIME user data: the multipart fixtures, every user-data file, gzip'd. -----------------
userdata = []
for root in ("multipart", "nocloud", "openstack", "ec2", "gce"):
    for p in files(os.path.join(FIX, root)):
        if "/input/" in p and os.path.basename(p) in ("user_data", "user-data", "vendor_data",
                                                      "vendor-data"):
            userdata.append(read(p))
for d in userdata:
    seed("mime", d)
    seed("mime", gzip.compress(d, mtime=0))
seed("mime", gzip.compress(b"#!/bin/sh\necho hi\n", mtime=0))
seed("mime", b"Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\n"
     b"Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n"
     + base64.encodebytes(b"#!/bin/sh\necho hi\n") +
     b"--b\nContent-Type: text/cloud-config; charset=utf-8\nContent-Transfer-Encoding: "
     b"quoted-printable\n\n#cloud-config\nruncmd:\n - [echo, =3D=\n]\n--b--\n")
# Issue 16: a boundary on no delimiter line; a document cut inside its last part.
seed("mime", b"Content-Type: multipart/mixed; boundary=\"===12345==\"\n\n--===123\n"
     b"Content-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--===123--\n")
seed("mime", b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/x-shellscript"
     b"\n\n#!/bin/sh\necho one\n--B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho fi")

# --- base64: encodings of the fixture documents, wrapped and not. -------------------------
for d in userdata[:8] + [b"", b"f", b"fo", b"foo", bytes(range(256))]:
    seed("base64", base64.b64encode(d))
    seed("base64", base64.encodebytes(d))

# --- GCE: the recursive document of each fixture tree, and one in GCE's own spelling. ----


def tree_json(d):
    names = sorted(n for n in os.listdir(d) if n != "_index")
    items = {}
    for n in names:
        p = os.path.join(d, n)
        items[n] = tree_json(p) if os.path.isdir(p) else read(p).decode("utf-8", "replace")
    if names and all(n.isdigit() for n in names):
        return [items[n] for n in sorted(names, key=int)]
    return items


for case in sorted(os.listdir(os.path.join(FIX, "gce"))):
    v1 = os.path.join(FIX, "gce", case, "input", "computeMetadata", "v1")
    if os.path.isdir(v1):
        seed("gce", json.dumps(tree_json(v1)).encode())
seed("gce", json.dumps({
    "instance": {
        "id": 4520031799277581759, "hostname": "vm-1.c.proj.internal",
        "zone": "projects/123/zones/us-central1-a", "machineType": "projects/123/machineTypes/e2-small",
        "attributes": {"ssh-keys": "alice:ssh-ed25519 AAAAC3Nza alice\nbob:ssh-rsa AAAAB3 google-ssh "
                                   "{\"userName\":\"bob\",\"expireOn\":\"2020-01-01T00:00:00+0000\"}",
                       "user-data": base64.b64encode(b"#cloud-config\nhostname: x\n").decode(),
                       "user-data-encoding": "base64", "block-project-ssh-keys": "false"},
        "networkInterfaces": [{"mac": "42:01:0a:80:00:02", "ip": "10.128.0.2",
                               "network": "projects/123/networks/default"}],
    },
    "project": {"projectId": "proj", "attributes": {"sshKeys": "carol:ssh-ed25519 AAAAC3 carol"}},
}).encode())
seed("gce", read(os.path.join(FIX, "malformed", "metadata-service-invalid-json", "input",
                              "openstack", "latest", "meta_data.json"))
     if os.path.exists(os.path.join(FIX, "malformed", "metadata-service-invalid-json", "input",
                                    "openstack", "latest", "meta_data.json")) else b"{")

# --- EC2: each fixture tree as path-headed documents. -------------------------------------
for case in sorted(os.listdir(os.path.join(FIX, "ec2"))):
    latest = os.path.join(FIX, "ec2", case, "input", "latest")
    docs = []
    for p in files(latest):
        if os.path.basename(p) == "_index":
            continue
        body = read(p)
        if len(body) > 4096:
            continue
        docs.append(os.path.relpath(p, latest).encode() + b"\n" + body)
    # The fields the reader looks at first, so a short max_len keeps them.
    docs.sort(key=lambda d: (b"macs" in d.split(b"\n")[0], b"instance-id" not in d, len(d)))
    seed("ec2", SEP.join(docs))
    seed("ec2", SEP.join(d for d in docs if d.startswith((b"meta-data/instance-id", b"meta-data/mac",
                                                            b"meta-data/local-hostname",
                                                            b"meta-data/public-keys",
                                                            b"meta-data/network/interfaces/macs/")))
         )


# --- GPT and MBR: tables made by sgdisk and sfdisk, their non-zero sectors as records. -----
def records(img, ss, flags, number, size, grow_mib):
    out = struct.pack("<BBIH", flags, number, size, grow_mib)
    data = read(img)
    for lba in range(len(data) // ss):
        s = data[lba * ss:(lba + 1) * ss]
        if any(s):
            out += struct.pack("<I", lba) + s
    return out


def run(*cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode == 0


img = os.path.join(TMP, "disk.img")
# sgdisk cannot be told a sector size for a file: the seeds are 512-byte; flag bit 0 (4096)
# is the fuzzer's to find.
if shutil.which("sgdisk"):
    for layout in (["-n", "1:2048:+2M", "-n", "2:0:0"],
                   ["-n", "1:2048:+1M", "-n", "14:0:+1M", "-n", "15:0:0"], ["-n", "1:0:+3M"]):
        if os.path.exists(img):
            os.unlink(img)
        with open(img, "wb") as f:
            f.truncate(8 << 20)
        guids = [a for n in layout[1::2] for a in ("-u", "%s:00000000-0000-4000-8000-%012d"
                                                    % (n.split(":")[0], int(n.split(":")[0])))]
        if not run("sgdisk", "-U", "11111111-2222-3333-4444-555555555555", *layout, *guids, img):
            continue
        for grow in (0, 4):
            seed("gpt", records(img, 512, 0, int(layout[-1].split(":")[0]), 0, grow))
            seed("gpt", records(img, 512, 2 | 4 | 8, 1, 0, grow))
            # The same with 8 entries (CRCs recomputed by the target): 16 KiB of CRC-32
            # under coverage instrumentation per copy is what makes this target slow.
            with open(img, "r+b") as f:
                for lba in (1, (8 << 20) // 512 - 1):
                    f.seek(lba * 512 + 80)
                    f.write(struct.pack("<I", 8))
            seed("gpt", records(img, 512, 2 | 4, int(layout[-1].split(":")[0]), 0, grow))
if shutil.which("sfdisk"):
    for script in (b"label: dos\nlabel-id: 0x12345678\n2048,4096,83\n",
                   b"label: dos\nlabel-id: 0x12345678\n2048,2048,83\n4096,,5\n6144,2048,83\n10240,,83\n",
                   b"label: dos\nlabel-id: 0x12345678\n2048,2048,83\n4096,2048,82\n6144,,83\n"):
        if os.path.exists(img):
            os.unlink(img)
        with open(img, "wb") as f:
            f.truncate(8 << 20)
        if run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", img, stdin=script):
            for number in (1, 3, 5, 6):
                seed("mbr", records(img, 512, 0, number, 0, 8))
