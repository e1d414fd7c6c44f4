#!/usr/bin/env python3
"""Mutational fuzz of HitMe's request parsing, on 127.0.0.1 only, bounded in count.

    bench/fuzz.py PORT [--requests 20000] [--seed 1] [--clients 32] [--timeout 5]

Takes well-formed requests (POST /hit with a form body, GET /hit, /hits, /healthz, HEAD,
OPTIONS, a chunked body), mangles each with one to three random mutations (a byte flipped,
inserted, deleted or duplicated, a line dropped or repeated, the request cut short, a
non-ASCII byte, a bare LF, a huge header, a garbage method), sends it on a connection of its
own and reads until the server closes or `--timeout` passes. Each request is classified:

  answered NNN       a full HTTP status line came back
  silent, cut short  closed without a word, but the request was incomplete (it ended before
                     its head or its declared body did): nothing to answer
  silent             closed without a word for a request that was complete
  no answer          nothing within --timeout (the server waits for more bytes)

HitMe should be started with a short --client-timeout-ms (say 500) so that incomplete
requests end quickly. Prints the tally, the first examples of each "silent" outcome, and
exits 1 if anything was answered 5xx other than 503, or if the server stopped answering.
"""

import argparse
import collections
import random
import socket
import sys
import threading

BODY = b"url=http%3A%2F%2Ffuzz.example%2F&timestamp=0"
SEEDS = [
    b"POST /hit HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    b"POST /hit?url=http%3A%2F%2Ffuzz.example%2F HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 0\r\n\r\n",
    b"GET /hit?url=http%3A%2F%2Ffuzz.example%2F&timestamp=0 HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    b"GET /hits?timestamp=0 HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"HEAD /index.html HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    b"OPTIONS /hit HTTP/1.1\r\nHost: fuzz\r\nOrigin: http://fuzz.example\r\n\r\n",
    b"POST /hit HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(11)
        i = rng.randrange(len(b)) if b else 0
        if kind == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[i:i] = bytes([rng.randrange(256)])
        elif kind == 2 and b:
            del b[i]
        elif kind == 3 and b:
            b[i:i] = b[i:i + rng.randint(1, 16)]
        elif kind == 4:
            lines = bytes(b).split(b"\r\n")
            if len(lines) > 2:
                del lines[rng.randrange(1, len(lines) - 1)]
            b = bytearray(b"\r\n".join(lines))
        elif kind == 5:
            lines = bytes(b).split(b"\r\n")
            j = rng.randrange(len(lines))
            lines.insert(j, lines[j])
            b = bytearray(b"\r\n".join(lines))
        elif kind == 6:
            b = b[: rng.randrange(len(b) + 1)]
        elif kind == 7:
            b[i:i] = bytes([rng.randrange(128, 256)])
        elif kind == 8:
            b = bytearray(bytes(b).replace(b"\r\n", b"\n", 1))
        elif kind == 9:
            head_end = bytes(b).find(b"\r\n")
            if head_end > 0:
                b[head_end:head_end] = b"\r\nX-Big: " + b"a" * rng.choice([100, 9000, 20000])
        else:
            sp = bytes(b).find(b" ")
            if sp > 0:
                b[:sp] = bytes(rng.choice([b"GTE", b"P0ST", b"", b"\x00GET", b"DELETE", b"BREW"]))
    return bytes(b)


def complete(req: bytes) -> bool:
    """Whether the request's head, and its body as Content-Length declares it, are all there."""
    end = req.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = req.find(b"\n\n"), 2
        if end < 0:
            return False
    head = req[:end].lower()
    body = req[end + sep:]
    for line in head.split(b"\n"):
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return True
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return True


def send(port: int, req: bytes, timeout: float) -> str:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return f"connect failed: {e.__class__.__name__}"
    try:
        s.sendall(req)
        got = b""
        while len(got) < 12:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        return "no answer"
    except OSError:
        got = b""
    finally:
        s.close()
    if got.startswith(b"HTTP/1.") and len(got) >= 12:
        return "answered " + got[9:12].decode("ascii", "replace")
    return "silent" if complete(req) else "silent, cut short"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = [mutate(rng.choice(SEEDS), rng) for _ in range(args.requests)]
    tally = collections.Counter()
    examples = collections.defaultdict(list)
    lock = threading.Lock()
    position = iter(range(len(work)))

    def client():
        while True:
            with lock:
                i = next(position, None)
            if i is None:
                return
            outcome = send(args.port, work[i], args.timeout)
            with lock:
                tally[outcome] += 1
                if outcome in ("silent", "no answer") and len(examples[outcome]) < 5:
                    examples[outcome].append(work[i][:160])

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for outcome, n in sorted(tally.items(), key=lambda kv: -kv[1]):
        print(f"{n:7d}  {outcome}")
    for outcome, reqs in examples.items():
        print(f"\nfirst {outcome!r} requests:")
        for r in reqs:
            print("   ", r)
    alive = send(args.port, SEEDS[4], args.timeout) == "answered 200"
    print(f"\nserver answers /healthz afterwards: {alive}")
    bad = [o for o in tally if o.startswith("answered 5") and o != "answered 503"]
    return 0 if alive and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
