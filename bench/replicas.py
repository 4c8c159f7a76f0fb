"""Two `starcast serve` replicas on one registry in S3 (moto on loopback),
behind a small round-robin proxy, beside one replica alone behind the same
proxy: classify traffic at CONNECTIONS keep-alive connections for SECONDS,
while a third process promotes the other version and rolls back every
PERIOD seconds. Reports requests/s, failed requests, p50/p99 latency and the
seconds until every replica serves each moved version (the first move of a
round fetches the version from S3 and loads it; later ones find it loaded).

Usage: python3 bench/replicas.py STARCAST MOTO_SERVER MODEL PHOTO [SECONDS] [CONNECTIONS] [PERIOD]
(standard library only).
"""

import asyncio
import http.client
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BINARY, MOTO, MODEL, PHOTO = sys.argv[1:5]
SECONDS = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
CONNECTIONS = int(sys.argv[6]) if len(sys.argv) > 6 else 16
PERIOD = float(sys.argv[7]) if len(sys.argv) > 7 else 10.0
BUCKET = "models"
REGISTRY = f"s3://{BUCKET}/registry"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def wait_for(port, path, process, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited")
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}{path}")


def proxy(backends):
    """A round-robin TCP proxy on loopback: each client connection goes to
    the next backend and stays there (keep-alive, as a load balancer does)."""
    port = free_port()
    turn = itertools.cycle(backends)
    ready = threading.Event()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait()
    return port


def starcast(env, *args):
    return subprocess.run([BINARY, *args], env=env, check=True, capture_output=True, text=True).stdout


def served_version(port):
    status, body = get(port, "/api/models")
    actors = [m for m in json.loads(body) if m.get("task") != "text-generation"]
    return actors[0].get("version") if status == 200 and actors else None


def load(port, moves):
    """Classify traffic through `port` while `moves` runs beside it."""
    photo = open(PHOTO, "rb").read()
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n\r\n'.encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    latencies, errors = [], []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                connection.request("POST", "/api/actors/predict", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status} {answer[:200]!r}")
            except Exception as error:  # a failed request is counted, not fatal
                with lock:
                    errors.append(repr(error))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            with lock:
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    mover = threading.Thread(target=moves, args=(deadline,))
    started = time.monotonic()
    for thread in threads + [mover]:
        thread.start()
    for thread in threads + [mover]:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "failed": len(errors),
        "first_errors": errors[:3],
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
    }


def main():
    work = tempfile.mkdtemp(prefix="starcast-replicas-")
    moto_port = free_port()
    env = dict(
        os.environ,
        AWS_ENDPOINT=f"http://127.0.0.1:{moto_port}",
        AWS_ALLOW_HTTP="true",
        AWS_ACCESS_KEY_ID="starcast-bench",
        AWS_SECRET_ACCESS_KEY="starcast-bench",
        AWS_REGION="us-east-1",
        RUST_LOG="warn",
        XDG_CACHE_HOME=os.path.join(work, "cache-cli"),
    )
    env.pop("STARCAST_REGISTRY", None)
    processes = []
    try:
        moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(moto)
        wait_for(moto_port, "/", moto)
        connection = http.client.HTTPConnection("127.0.0.1", moto_port)
        connection.request("PUT", f"/{BUCKET}")
        assert connection.getresponse().status == 200
        starcast(env, "models", "add", MODEL, "--registry", REGISTRY, "--promote")
        starcast(env, "models", "add", MODEL, "--registry", REGISTRY)

        def replica(name):
            port = free_port()
            replica_env = dict(env, XDG_CACHE_HOME=os.path.join(work, f"cache-{name}"))
            process = subprocess.Popen(
                [BINARY, "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--data", os.path.join(work, f"data-{name}"), "--registry", REGISTRY,
                 "--registry-poll", "1"],
                env=replica_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(process)
            wait_for(port, "/healthz", process)
            return port, process

        def mover(ports, seen):
            """Every PERIOD s: promote v2 while v1 is served, else roll back.
            The pause is stretched by up to a second at random, or each move
            would land at the same moment of the replicas' 1 s poll."""
            def moves(deadline):
                while time.monotonic() + PERIOD + 1 < deadline:
                    time.sleep(PERIOD + random.random())
                    if served_version(ports[0]) == "v1":
                        starcast(env, "models", "promote", "v2", "--registry", REGISTRY)
                        version = "v2"
                    else:
                        starcast(env, "models", "rollback", "--registry", REGISTRY)
                        version = "v1"
                    moved = time.monotonic()
                    while not all(served_version(port) == version for port in ports):
                        time.sleep(0.02)
                    seen.append(round(time.monotonic() - moved, 2))
            return moves

        # Each round starts replicas with empty caches, so its first move
        # fetches a version from S3 and loads it; later ones swap between
        # the two versions each replica keeps loaded.
        results = {}
        rounds = [("two replicas", ["a", "b"]), ("one replica", ["alone"])]
        for name, replicas in rounds:
            started = [replica(replica_name) for replica_name in replicas]
            ports = [port for port, _ in started]
            seen = []
            results[name] = load(proxy(ports), mover(ports, seen))
            results[name]["seconds_until_served"] = seen
            for _, process in started:
                process.terminate()
                process.wait()
        for name, figures in results.items():
            print(f"{name}: {json.dumps(figures)}")
        ratio = results["two replicas"]["requests_per_s"] / results["one replica"]["requests_per_s"]
        print(f"two replicas / one: {ratio:.2f}x requests/s")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
