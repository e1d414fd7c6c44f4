#!/usr/bin/env python3
"""Bytes Redis uses per (URL, bucket) in HitMe's two layouts; the method behind
docs/memory.md.

    python3 bench/redis-memory.py [--sizes 10000,100000] [--url-bytes 40]

Starts its own redis-server on a free loopback port (--save "" --appendonly no, data in a
temporary directory), once as a plain server and once as a one-node Redis Cluster that owns
every slot (cluster mode adds per-key bookkeeping), and stops each when done. For each
experiment it empties Redis (FLUSHALL), reads INFO memory's used_memory, writes the keys
with a pipelined connection that it then closes (so that no client buffer is counted), and
reads used_memory again: the difference divided by the entries written is the cost of one
entry, everything included (key or field, value, hash-table slots, expiry entries, the
allocator's rounding). URLs are --url-bytes long (default 40):
https://www.example.com/page/<10 digits>/, padded with "x" before the last "/" when longer.

Prints a markdown table. Python standard library only, and redis-server on the PATH.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchkit  # noqa: E402  (Resp, freeport's port range)

MINUTE_START = 1_795_846_020_000      # a minute bucket's start, ms
EXPIRE_AT = MINUTE_START // 1000 + 60 + 48 * 3600   # its end + 48 h, as HitMe sets it


URL_BYTES = 40


def url(i):
    u = b"https://www.example.com/page/%010d" % i
    return u + b"x" * (URL_BYTES - len(u) - 1) + b"/"


def tag(u):
    """The cluster layout's hash tag of a URL (docs/cluster.md): FNV-1a, then fmix64."""
    m = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in u:
        h = ((h ^ b) * 0x100000001b3) & m
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & m
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & m
    h ^= h >> 33
    return h


def count(i):
    # Bucket counts are mostly small: 1 to 5.
    return b"%d" % (1 + i % 5)


def free_port():
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit("no free port")


class Server:
    def __init__(self, cluster):
        self.dir = tempfile.mkdtemp(prefix="hitme-redis-memory.")
        self.port = free_port()
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log",
                "--daemonize", "no"]
        if cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.r = benchkit.Resp(self.port)
                self.r.call("PING")
                break
            except (OSError, benchkit.RedisError):
                time.sleep(0.1)
        else:
            self.stop()
            sys.exit("redis-server did not start")
        if cluster:
            self.r.call("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            for _ in range(100):
                if "cluster_state:ok" in self.r.call("CLUSTER", "INFO").decode():
                    break
                time.sleep(0.1)
            else:
                self.stop()
                sys.exit("the one-node cluster did not become ok")
        self.version = self.r.info("server")["redis_version"]

    def used(self):
        m = self.r.info("memory")
        return int(m["used_memory"]), int(m["used_memory_dataset"])

    def write(self, commands):
        """Sends the commands pipelined on a connection of their own, checks every reply,
        closes it."""
        c = benchkit.Resp(self.port)
        pending = 0
        for k in range(0, len(commands), 1000):
            c.sock.sendall(b"".join(benchkit.Resp.encode(a) for a in commands[k:k + 1000]))
            pending += len(commands[k:k + 1000])
            while pending > 5000:
                c.reply()
                pending -= 1
        while pending:
            c.reply()
            pending -= 1
        c.sock.close()

    def measure(self, commands, entries):
        self.r.call("FLUSHALL", "SYNC")
        time.sleep(0.2)
        before, before_ds = self.used()
        self.write(commands)
        time.sleep(0.2)
        after, after_ds = self.used()
        return (after - before) / entries, (after_ds - before_ds) / entries

    def encoding(self, key):
        return self.r.call("OBJECT", "ENCODING", key).decode()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000",
                    help="URL counts to measure, comma-separated (default 10000,100000)")
    ap.add_argument("--url-bytes", type=int, default=40,
                    help="length of each URL, 40 to 2048 (default 40)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    global URL_BYTES
    if not 40 <= args.url_bytes <= 2048:
        sys.exit("--url-bytes must be from 40 to 2048")
    URL_BYTES = args.url_bytes
    rows = []

    plain = Server(cluster=False)
    try:
        key = b"hits:minute:%d" % MINUTE_START
        for n in sizes:
            cmds = [[b"HSET", key] + [x for i in range(lo, min(n, lo + 1000))
                                      for x in (url(i), count(i))]
                    for lo in range(0, n, 1000)]
            cmds.append([b"EXPIREAT", key, EXPIRE_AT])
            per, per_ds = plain.measure(cmds, n)
            rows.append(("standalone", f"one bucket hash, {n:,} URLs as fields",
                         plain.encoding(key), n, per, per_ds))
        # Small buckets (at most hash-max-listpack-entries = 128 fields) stay listpacks:
        # 1,000 hashes of 100 URLs.
        cmds = []
        for b in range(1000):
            k = b"hits:minute:%d" % (MINUTE_START + 60_000 * b)
            cmds.append([b"HSET", k] + [x for i in range(100) for x in (url(b * 100 + i), count(i))])
            cmds.append([b"EXPIREAT", k, EXPIRE_AT + 60 * b])
        per, per_ds = plain.measure(cmds, 100_000)
        rows.append(("standalone", "1,000 bucket hashes of 100 URLs each (small buckets)",
                     plain.encoding(b"hits:minute:%d" % MINUTE_START), 100_000, per, per_ds))
        plain_version = plain.version
    finally:
        plain.stop()

    node = Server(cluster=True)
    try:
        for n in sizes:
            cmds = []
            for i in range(n):
                u = url(i)
                k = b"hits:{%016x}:minute:%d" % (tag(u), MINUTE_START)
                cmds.append([b"HSET", k, u, count(i)])
                cmds.append([b"EXPIREAT", k, EXPIRE_AT])
            per, per_ds = node.measure(cmds, n)
            rows.append(("cluster", f"one key per (URL, bucket) with EXPIREAT, {n:,} URLs",
                         node.encoding(cmds[0][1]), n, per, per_ds))
        n = sizes[-1]
        cmds = [[b"HSET", b"hits:{%016x}:all" % tag(url(i)), url(i), count(i)] for i in range(n)]
        per, per_ds = node.measure(cmds, n)
        rows.append(("cluster", f"`:all` key per URL, no expiry, {n:,} URLs",
                     node.encoding(cmds[0][1]), n, per, per_ds))
        cmds = [[b"SADD", b"hits:urls:{s%d}" % (tag(url(i)) >> 60), url(i)] for i in range(n)]
        per, per_ds = node.measure(cmds, n)
        rows.append(("cluster", f"URL index (16 sets), {n:,} URLs", node.encoding(cmds[0][1]),
                     n, per, per_ds))
        cluster_version = node.version
    finally:
        node.stop()

    print(f"Redis {plain_version} (plain) and {cluster_version} (one-node cluster, all "
          f"slots); URLs of {URL_BYTES} bytes; counts 1 to 5.\n")
    print("| layout | what | encoding | entries | used_memory per entry, bytes | "
          "used_memory_dataset per entry |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for layout, what, enc, n, per, per_ds in rows:
        print(f"| {layout} | {what} | {enc} | {n:,} | {per:.1f} | {per_ds:.1f} |")


if __name__ == "__main__":
    main()
