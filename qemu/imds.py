#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A metadata server for the QEMU network boots (qemu/net-boot.sh): serves a fixture input/
# tree on 127.0.0.1:PORT (or --bind ADDR, an IPv6 address too) the way the platform does
# (FORMAT.md in the shared fixtures): `_index` (or a generated listing) for directory URLs,
# 404 for what is absent, and with --ec2 the IMDSv2 token (PUT /latest/api/token; GETs
# without it get 401). Each request's method, path and Host header go to stderr.
import http.server, os, socket, sys

root, port, ec2 = sys.argv[1], int(sys.argv[2]), "--ec2" in sys.argv
bind = sys.argv[sys.argv.index("--bind") + 1] if "--bind" in sys.argv else "127.0.0.1"
TOKEN = b"qemu-test-token"

class H(http.server.BaseHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        sys.stderr.write('"%s %s" Host=%s %s\n' % (self.command, self.path, self.headers.get("Host"), code))

    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if ec2 and self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, TOKEN)
        self.reply(405)

    def do_GET(self):
        if ec2 and self.headers.get("X-aws-ec2-metadata-token", "").encode() != TOKEN:
            return self.reply(401)
        rel = self.path.split("?")[0].lstrip("/")
        if ".." in rel.split("/"):
            return self.reply(400)
        p = os.path.join(root, rel.rstrip("/"))
        if os.path.isdir(p):
            idx = os.path.join(p, "_index")
            if os.path.exists(idx):
                return self.reply(200, open(idx, "rb").read())
            names = sorted(n + ("/" if os.path.isdir(os.path.join(p, n)) else "") for n in os.listdir(p) if n != "_index")
            return self.reply(200, "\n".join(names).encode())
        if os.path.isfile(p):
            return self.reply(200, open(p, "rb").read())
        self.reply(404)

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET

Server((bind, port), H).serve_forever()
