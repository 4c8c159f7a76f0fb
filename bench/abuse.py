"""Mixed and abusive traffic against a running `starcast serve`, bounded in
time: classify, write and stream horoscopes, pages, flags, and what an
abusive visitor sends (photos claiming 121 megapixels, deeply nested and
oversized flag JSON, made-up methods, streams dropped half-way). Reports
the responses by status, the 5xx other than a deliberate 503, `/healthz`
latency (p50, p99) from a prober beside the load, and the server's RSS at
the start, the end and its peak.

Usage: python3 bench/abuse.py PORT PID PHOTO [SECONDS] [CONNECTIONS]
"""

import http.client
import json
import random
import statistics
import struct
import sys
import threading
import time
import uuid
import zlib
from collections import Counter

PORT, PID, PHOTO = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
CONNECTIONS = int(sys.argv[5]) if len(sys.argv) > 5 else 32
HOST = "127.0.0.1"


def rss_mb(field):
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def claimed_png(width, height):
    """A valid 1x1 PNG whose header claims width x height."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x10\x20\x30")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def multipart(fields):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


PHOTO_BYTES = open(PHOTO, "rb").read()
HUGE_CLAIM = claimed_png(11_000, 11_000)
NESTED = ("[" * 100_000 + "]" * 100_000).encode()
WIDE = json.dumps([[[0]]] * 200_000).encode()
SIGNS = ["aries", "taurus", "gemini", "cancer", "leo", "virgo", "libra", "scorpio"]


def request(connection, method, path, body=None, headers=None, stream_bytes=None):
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    if stream_bytes is not None:
        response.read(stream_bytes)
        connection.close()
    else:
        response.read()
    return response.status


def one_request(connection, rng):
    kind = rng.choices(
        ["classify", "write", "stream", "page", "flag", "huge_photo", "nested_flag",
         "wide_flag", "made_up_method", "dropped_stream"],
        weights=[30, 6, 6, 25, 5, 8, 5, 5, 5, 5],
    )[0]
    if kind == "classify":
        body, kind_header = multipart([("image", PHOTO_BYTES, "photo.jpg")])
        return kind, request(connection, "POST", "/api/actors/predict", body, {"Content-Type": kind_header})
    if kind == "huge_photo":
        body, kind_header = multipart([("image", HUGE_CLAIM, "huge.png")])
        return kind, request(connection, "POST", "/api/actors/predict", body, {"Content-Type": kind_header})
    if kind == "write":
        body = json.dumps({"sign": rng.choice(SIGNS), "seed": rng.randrange(1000)})
        return kind, request(connection, "POST", "/api/horoscope", body, {"Content-Type": "application/json"})
    if kind == "stream":
        path = f"/api/horoscope/stream?sign={rng.choice(SIGNS)}&seed={rng.randrange(1000)}"
        return kind, request(connection, "GET", path)
    if kind == "dropped_stream":
        return kind, request(connection, "GET", f"/api/horoscope/stream?sign=leo&seed={rng.randrange(1000)}",
                             stream_bytes=64)
    if kind == "page":
        return kind, request(connection, "GET", rng.choice(["/", "/horoscope", "/models", "/pipeline"]))
    if kind in ("flag", "nested_flag", "wide_flag"):
        value = {"flag": b'{"sign": "leo"}', "nested_flag": NESTED, "wide_flag": WIDE}[kind]
        body, kind_header = multipart([("task", b"horoscope", None), ("input", value, None),
                                       ("output", b"{}", None), ("reason", b"load test", None)])
        return kind, request(connection, "POST", "/api/flags", body, {"Content-Type": kind_header})
    return kind, request(connection, f"BREW{rng.randrange(1000)}", "/healthz")


results = Counter()
server_errors = Counter()
lock = threading.Lock()
deadline = time.monotonic() + SECONDS


def client(seed):
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(HOST, PORT, timeout=60)
    while time.monotonic() < deadline:
        try:
            kind, status = one_request(connection, rng)
        except (OSError, http.client.HTTPException) as error:
            kind, status = "connection", type(error).__name__
            connection.close()
        with lock:
            results[(kind, status)] += 1
            if isinstance(status, int) and status >= 500 and status != 503:
                server_errors[(kind, status)] += 1


health = []


def prober():
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection(HOST, PORT, timeout=30)
            status = request(connection, "GET", "/healthz")
            connection.close()
            if status == 200:
                health.append(time.monotonic() - started)
        except OSError:
            pass
        time.sleep(0.1)


start_rss = rss_mb("VmRSS")
threads = [threading.Thread(target=client, args=(i,)) for i in range(CONNECTIONS)]
threads.append(threading.Thread(target=prober))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
end_rss, peak_rss = rss_mb("VmRSS"), rss_mb("VmHWM")

print(f"{SECONDS:.0f} s at {CONNECTIONS} connections: {sum(results.values())} requests")
for (kind, status), count in sorted(results.items(), key=lambda item: str(item[0])):
    print(f"  {kind:>15} {status!s:>20}  {count}")
health.sort()
p50 = statistics.median(health) * 1000 if health else float("nan")
p99 = health[int(len(health) * 0.99) - 1] * 1000 if health else float("nan")
print(f"5xx other than 503: {sum(server_errors.values())} {dict(server_errors)}")
print(f"/healthz: {len(health)} probes, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
print(f"RSS: start {start_rss:.0f} MB, end {end_rss:.0f} MB, peak {peak_rss:.0f} MB")
