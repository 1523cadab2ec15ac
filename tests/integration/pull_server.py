#!/usr/bin/env python3
"""Test servers for test_pull.sh, on loopback ports.

  pull_server.py token PORT KEY CERT ISSUER SERVICE USER PASS LOG
      A Bearer token endpoint (GET /token?scope=..&service=..) for a
      docker-registry configured with `auth: token:`. It answers 401 unless
      the request has Basic USER:PASS, else a JWT (RS256, signed by KEY
      with `openssl dgst`, CERT in the x5c header: the registry trusts it
      through its rootcertbundle) granting pull on the scope's repository.
      LOG gets one line per request: "token AUTH SCOPE" (AUTH basic-ok,
      basic-bad or none).
  pull_server.py front PORT BLOBPORT UPSTREAM STORAGE LOG [FAIL [CUT]]
      A reverse proxy to the registry UPSTREAM (host:port) that answers
      every blob GET with a 307 to a second server, on localhost:BLOBPORT
      (another host name and port: "blob storage"), which serves the blob
      from the registry's STORAGE dir. LOG gets one line per blob served:
      "blob DIGEST auth=yes|no" (whether an Authorization header came).
      FAIL: the first FAIL manifest requests get a 503 ("manifest 503").
      CUT: the first CUT blob answers stop halfway ("blob DIGEST cut").
"""
import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


def token_server(port, key, cert, issuer, service, user, pw, logf):
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    want = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            auth = self.headers.get("Authorization")
            state = "none" if not auth else ("basic-ok" if auth == want else "basic-bad")
            scope = q.get("scope", [""])[0]
            log(logf, f"token {state} {scope}")
            if u.path != "/token" or state != "basic-ok":
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}')
                return
            access = []
            m = re.match(r"repository:([^:]+):(.*)", scope)
            if m:
                access.append({"type": "repository", "name": m.group(1),
                               "actions": ["pull"]})
            now = int(time.time())
            hdr = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": str(now) + str(os.getpid()),
                      "access": access}
            signing = (b64url(json.dumps(hdr).encode()) + "." +
                       b64url(json.dumps(claims).encode())).encode()
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                                 input=signing, check=True, capture_output=True).stdout
            tok = signing.decode() + "." + b64url(sig)
            body = json.dumps({"token": tok, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


def front_server(port, blobport, upstream, storage, logf, fail=0, cut=0):
    left = [fail]
    cuts = [cut]
    blob_re = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")

    class Front(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def relay(self, method):
            m = blob_re.match(self.path)
            if "/manifests/" in self.path and left[0] > 0:
                left[0] -= 1
                log(logf, "manifest 503")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if m and method == "GET":
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{blobport}/b/{m.group(2)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(f"http://{upstream}{self.path}", method=method)
            for h in ("Authorization", "Accept"):
                if self.headers.get(h):
                    req.add_header(h, self.headers[h])
            try:
                r = urllib.request.urlopen(req)
            except urllib.error.HTTPError as e:
                r = e
            body = r.read()
            self.send_response(r.status if hasattr(r, "status") else r.code)
            for h in ("Content-Type", "WWW-Authenticate", "Docker-Content-Digest",
                      "Docker-Distribution-Api-Version"):
                if r.headers.get(h):
                    self.send_header(h, r.headers[h])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            self.relay("GET")

        def do_HEAD(self):
            self.relay("HEAD")

    class Blobs(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            d = self.path.rsplit("/", 1)[-1]
            hexd = d.split(":", 1)[-1]
            log(logf, f"blob {d} auth={'yes' if self.headers.get('Authorization') else 'no'}")
            p = os.path.join(storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
            try:
                body = open(p, "rb").read()
            except OSError:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cuts[0] > 0 and len(body) > 1:
                cuts[0] -= 1
                log(logf, f"blob {d} cut")
                self.wfile.write(body[:len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    b = http.server.ThreadingHTTPServer(("127.0.0.1", blobport), Blobs)
    threading.Thread(target=b.serve_forever, daemon=True).start()
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Front).serve_forever()


def main():
    role, args = sys.argv[1], sys.argv[2:]
    if role == "token":
        port, key, cert, issuer, service, user, pw, logf = args
        token_server(int(port), key, cert, issuer, service, user, pw, logf)
    elif role == "front":
        port, blobport, upstream, storage, logf = args[:5]
        front_server(int(port), int(blobport), upstream, storage, logf,
                     int(args[5]) if len(args) > 5 else 0,
                     int(args[6]) if len(args) > 6 else 0)
    else:
        sys.exit("usage: pull_server.py token|front ...")


if __name__ == "__main__":
    main()
