"""Flag writes per second: `starcast serve` storing flags (each with a
photo) in its records database, first the default SQLite file, then
PostgreSQL at the URL given, at CLIENTS concurrent keep-alive clients for
SECONDS each. Each flag comes from an address of its own (X-Forwarded-For
from loopback, which the server trusts here), so the per-client flag rate
limit does not meter the database. Reports flags/s, p50/p99 latency and
refused or failed requests, and checks the queue holds every acknowledged
flag.

Usage: python3 bench/flags.py STARCAST PHOTO SECONDS CLIENTS POSTGRES_URL
(standard library only).
"""

import http.client
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BINARY, PHOTO = sys.argv[1:3]
SECONDS = float(sys.argv[3])
CLIENTS = int(sys.argv[4])
POSTGRES = sys.argv[5]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server on port {port} did not come up")


def flag_form(photo):
    boundary = uuid.uuid4().hex
    fields = {
        "task": "actors",
        "input": '{"file": "obama3.jpg"}',
        "output": '{"predictions": [{"label": "Joe Biden", "score": 0.61}]}',
        "reason": "that is not him",
        "label": "Barack Obama",
    }
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n\r\n'.encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def load(port, body, content_type):
    addresses = itertools.count(1)
    lock = threading.Lock()
    latencies, ids, failed = [], [], []
    deadline = time.monotonic() + SECONDS

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                n = next(addresses)
            headers = {
                "Content-Type": content_type,
                "X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            }
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/flags", body, headers)
                response = connection.getresponse()
                answer = response.read()
            except OSError as error:
                with lock:
                    failed.append(str(error))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                if response.status == 200:
                    latencies.append(elapsed)
                    ids.append(answer)
                else:
                    failed.append(f"{response.status} {answer[:120]!r}")

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, latencies, ids, failed


def queued(data, records):
    out = subprocess.run(
        [BINARY, "dataset", "flags", "--data", data, "--records", records,
         "--out", os.path.join(data, "flagged")],
        check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if "flags in the review queue" in l)
    return int(line.split()[0])


def run(name, records, photo):
    with tempfile.TemporaryDirectory() as data:
        records = records or f"sqlite://{data}/records.db"
        port = free_port()
        env = dict(os.environ, RUST_LOG="error")
        process = subprocess.Popen(
            [BINARY, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data", data, "--records", records, "--trusted-proxy", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port, process)
            body, content_type = flag_form(photo)
            seconds, latencies, ids, failed = load(port, body, content_type)
        finally:
            process.terminate()
            process.wait()
        stored = queued(data, records)
        ms = sorted(l * 1000 for l in latencies)
        p99 = ms[int(len(ms) * 0.99) - 1] if ms else float("nan")
        print(
            f"{name:>10}: {len(ids) / seconds:7.1f} flags/s, p50 {statistics.median(ms):6.1f} ms, "
            f"p99 {p99:6.1f} ms, {len(failed)} refused or failed, "
            f"{stored} in the queue of {len(ids)} acknowledged"
        )
        for reason in sorted(set(failed))[:3]:
            print(f"            e.g. {reason}")
        if stored != len(ids):
            raise SystemExit(f"{name}: the queue holds {stored} flags, {len(ids)} were acknowledged")
        return len(ids) / seconds


def main():
    with open(PHOTO, "rb") as f:
        photo = f.read()
    sqlite = run("SQLite", None, photo)
    postgres = run("PostgreSQL", POSTGRES, photo)
    print(f"PostgreSQL / SQLite: {postgres / sqlite:.2f}x")


main()
