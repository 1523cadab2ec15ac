#!/usr/bin/env python3
"""Assemble OCI image layouts from layer files, for the test registry.

  oci_layout.py image LAYOUT TAG [--arch A] [--os O] [--env K=V]...
                [--cmd ARG]... [--base TAG] LAYER...
      An image of LAYER files (tar, tar.gz or tar.zst, by suffix; each
      blob is stored as it is, its diff_id is the digest of the plain tar),
      tagged TAG in LAYOUT (made if missing). --base TAG: that image's
      layers first.
  oci_layout.py index LAYOUT TAG SRC_TAG...
      An image index over the images tagged SRC_TAG (their platforms from
      their configs, in the order given), tagged TAG.

umoci writes the layouts of the tests' own trees too, but its layers end
without the tar end-of-archive blocks (and the last member's padding):
GNU tar and Python's tarfile reject them. GNU tar makes the layers here
(see registry.sh); this script only hashes and writes JSON.
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    ".tar": "application/vnd.oci.image.layer.v1.tar",
    ".gz": "application/vnd.oci.image.layer.v1.tar+gzip",
    ".zst": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"


def init_layout(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    path = os.path.join(layout, "oci-layout")
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
    path = os.path.join(layout, "index.json")
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump({"schemaVersion": 2, "manifests": []}, f)


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def get_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def plain_tar(path, data):
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return data


def read_index(layout):
    with open(os.path.join(layout, "index.json")) as f:
        return json.load(f)


def tag_descriptor(layout, tag, desc):
    index = read_index(layout)
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get(REF_NAME) != tag]
    desc = dict(desc, annotations={REF_NAME: tag})
    index["manifests"].append(desc)
    tmp = os.path.join(layout, "index.json.tmp")
    with open(tmp, "w") as f:
        json.dump(index, f)
    os.rename(tmp, os.path.join(layout, "index.json"))


def find_tag(layout, tag):
    for m in read_index(layout)["manifests"]:
        if m.get("annotations", {}).get(REF_NAME) == tag:
            return m
    sys.exit("oci_layout.py: no tag %s in %s" % (tag, layout))


def cmd_image(a):
    init_layout(a.layout)
    layers, diff_ids = [], []
    if a.base:
        base = json.loads(get_blob(a.layout, find_tag(a.layout, a.base)["digest"]))
        base_cfg = json.loads(get_blob(a.layout, base["config"]["digest"]))
        layers = list(base["layers"])
        diff_ids = list(base_cfg["rootfs"]["diff_ids"])
    for path in a.layers:
        ext = os.path.splitext(path)[1]
        if ext not in MT_LAYER:
            sys.exit("oci_layout.py: %s: a layer is .tar, .tar.gz or .tar.zst" % path)
        with open(path, "rb") as f:
            data = f.read()
        digest, size = put_blob(a.layout, data)
        layers.append({"mediaType": MT_LAYER[ext], "digest": digest, "size": size})
        diff_ids.append("sha256:" + hashlib.sha256(plain_tar(path, data)).hexdigest())
    config = {
        "architecture": a.arch, "os": a.os,
        "config": {"Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                    "/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "tests/integration/oci_layout.py"} for _ in layers],
    }
    if a.cmd:
        config["config"]["Cmd"] = a.cmd
    cdigest, csize = put_blob(a.layout, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": cdigest, "size": csize},
                "layers": layers}
    mdigest, msize = put_blob(a.layout, json.dumps(manifest, sort_keys=True).encode())
    tag_descriptor(a.layout, a.tag, {"mediaType": MT_MANIFEST, "digest": mdigest,
                                     "size": msize})
    print(mdigest)


def cmd_index(a):
    manifests = []
    for src in a.sources:
        desc = find_tag(a.layout, src)
        manifest = json.loads(get_blob(a.layout, desc["digest"]))
        config = json.loads(get_blob(a.layout, manifest["config"]["digest"]))
        manifests.append({"mediaType": MT_MANIFEST, "digest": desc["digest"],
                          "size": desc["size"],
                          "platform": {"architecture": config["architecture"],
                                       "os": config["os"]}})
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    digest, size = put_blob(a.layout, json.dumps(index, sort_keys=True).encode())
    tag_descriptor(a.layout, a.tag, {"mediaType": MT_INDEX, "digest": digest, "size": size})
    print(digest)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("image")
    i.add_argument("layout")
    i.add_argument("tag")
    i.add_argument("--arch", default="amd64")
    i.add_argument("--os", default="linux")
    i.add_argument("--env", action="append")
    i.add_argument("--cmd", action="append", help="one argument of Cmd (repeat)")
    i.add_argument("--base")
    i.add_argument("layers", nargs="+")
    x = sub.add_parser("index")
    x.add_argument("layout")
    x.add_argument("tag")
    x.add_argument("sources", nargs="+")
    a = p.parse_args()
    if shutil.which("zstd") is None and a.what == "image" and \
            any(l.endswith(".zst") for l in a.layers):
        sys.exit("oci_layout.py: zstd layers need the zstd tool (scripts/deps)")
    (cmd_image if a.what == "image" else cmd_index)(a)


if __name__ == "__main__":
    main()
