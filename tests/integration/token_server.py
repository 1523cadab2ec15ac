#!/usr/bin/env python3
"""A Docker registry token server for the tests (registry.sh's tls-token):
the Bearer side of the distribution auth protocol, Python's standard library
and the openssl tool only.

  token_server.py PORT_FILE CERT KEY SIGN_CERT SIGN_KEY USER PASS ISSUER LOG

Serves https://127.0.0.1:PORT/token (PORT chosen by the kernel and written
to PORT_FILE once it listens). GET /token?service=S&scope=repository:NAME:ACTIONS
with Basic USER:PASS gets a JWT (ES256, signed with SIGN_KEY, SIGN_CERT in
its x5c header) granting the actions asked for; without credentials, one
granting nothing (the registry then answers 401); wrong credentials: 401.
Each request is a line in LOG: "METHOD user=NAME|- scope=... -> STATUS".
"""
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_ecdsa_to_raw(der):
    """openssl's DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> r || s."""
    def read_int(buf, i):
        assert buf[i] == 0x02
        n = buf[i + 1]
        return int.from_bytes(buf[i + 2:i + 2 + n], "big"), i + 2 + n
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    r, i = read_int(der, i)
    s, _ = read_int(der, i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Handler(http.server.BaseHTTPRequestHandler):
    cfg = {}

    def log_message(self, fmt, *args):
        pass

    def note(self, user, scope, status):
        with open(self.cfg["log"], "a") as f:
            f.write("%s user=%s scope=%s -> %d\n" % (self.command, user or "-", scope, status))

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        scope = " ".join(q.get("scope", []))
        if url.path != "/token":
            self.send_error(404)
            return
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user, pw = "?", ""
            if (user, pw) != (self.cfg["user"], self.cfg["pass"]):
                self.note(user, scope, 401)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cvm-test-token"')
                self.end_headers()
                return
        access = []
        for s in q.get("scope", []):
            parts = s.split(":")
            if len(parts) >= 3 and parts[0] == "repository" and user:
                access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                               "actions": parts[-1].split(",")})
        now = int(time.time())
        claims = {"iss": self.cfg["issuer"], "sub": user or "", "aud": q.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self.cfg["x5c"]]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.cfg["sign_key"]],
                             input=signing_input.encode(), stdout=subprocess.PIPE,
                             check=True).stdout
        token = signing_input + "." + b64url(der_ecdsa_to_raw(der))
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})
        self.note(user, scope, 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


def main():
    port_file, cert, key, sign_cert, sign_key, user, pw, issuer, log = sys.argv[1:10]
    with open(sign_cert) as f:
        pem = "".join(l for l in f.read().splitlines() if not l.startswith("-----"))
    Handler.cfg = {"user": user, "pass": pw, "issuer": issuer, "sign_key": sign_key,
                   "x5c": pem, "log": log}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
