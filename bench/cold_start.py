"""Cold start of the starcast binary: process spawn to the first 200 on `/`.

Usage: python3 bench/cold_start.py BINARY SITE [RUNS]
Prints one JSON object: every run in milliseconds, the median and the worst.
"""

import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_ok(port, deadline):
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.001)
    return False


def main():
    binary, site = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    times = []
    for _ in range(runs):
        port = free_port()
        with tempfile.TemporaryDirectory() as data:
            start = time.monotonic()
            server = subprocess.Popen(
                [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--site", site, "--data", data],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                if not first_ok(port, start + 30):
                    sys.exit("the server did not answer within 30 s")
                times.append((time.monotonic() - start) * 1000)
            finally:
                server.terminate()
                server.wait()
    print(json.dumps({"runs_ms": [round(t, 1) for t in times], "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}))


if __name__ == "__main__":
    main()
