"""Classifier serving beside the course's Gradio app, in one run: a
resnet18 `model.pth` with a 3-actor head (seeded weights, saved as a
student saves it) served by `starcast serve` and by a Gradio 6 app of the
lab's shape (`gr.Interface` over torchvision, `queue(default_concurrency_
limit=8)`); the same Python-threads client shape for both, 8 clients
sending one real photo, one request after another, for the same time.
Reports requests/s, p50 and p99 latency, each server's peak RSS, and
whether the two agree on the top label.

Usage: python bench/serving.py STARCAST_BINARY SITE PHOTO [SECONDS] [CLIENTS]
(run with the peer environment's python: it needs torch, torchvision,
gradio and gradio_client).
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BINARY, SITE, PHOTO = sys.argv[1], sys.argv[2], sys.argv[3]
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
CLIENTS = int(sys.argv[5]) if len(sys.argv) > 5 else 8
LABELS = ["Ada", "Bea", "Cleo"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(port, path, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port}{path}")


def write_model(folder):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(LABELS))
    path = os.path.join(folder, "model.pth")
    torch.save(model.state_dict(), path)
    return path


# The course's app as bench/image.sh builds it into the Gradio Space's image.
GRADIO_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gradio-space", "app.py")


def starcast_client(port):
    body_photo = open(PHOTO, "rb").read()
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n\r\n".encode()
        + body_photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def call(connection):
        connection.request("POST", "/api/actors/predict", body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(answer)
        return answer["predictions"][0]["label"]

    return lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=120), call


def gradio_client(port):
    from gradio_client import Client, handle_file

    def call(client):
        answer = client.predict(handle_file(PHOTO), api_name="/predict")
        return answer["label"]

    return lambda: Client(f"http://127.0.0.1:{port}/", verbose=False), call


def load(name, make, call):
    latencies, labels, errors = [], set(), []
    deadline = time.monotonic() + SECONDS
    lock = threading.Lock()

    def worker():
        connection = make()
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                label = call(connection)
            except Exception as error:  # a failed request is counted, not fatal
                with lock:
                    errors.append(repr(error))
                connection = make()
                continue
            with lock:
                latencies.append(time.monotonic() - started)
                labels.add(label)

    warm = make()
    call(warm)
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "server": name,
        "requests": len(latencies),
        "errors": len(errors),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "labels": sorted(labels),
    }


def measure(name, command, port, ready_path, client, env=None):
    """Starts a server, loads it, and stops it: its figures and peak RSS."""
    environment = dict(os.environ, **(env or {}))
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    try:
        wait_for(port, ready_path)
        result = load(name, *client(port))
        result["peak_rss_mb"] = peak_rss_mb(server.pid)
        return result
    finally:
        server.terminate()
        server.wait()


def main():
    folder = tempfile.mkdtemp()
    weights = write_model(folder)
    port = free_port()
    ours = measure(
        "starcast",
        [BINARY, "serve", "--host", "127.0.0.1", "--port", str(port), "--site", SITE,
         "--data", os.path.join(folder, "data"), "--actors-model", weights,
         "--actors-labels", ",".join(LABELS)],
        port, "/healthz", starcast_client,
    )
    port = free_port()
    env = {"MODEL_PATH": weights, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    theirs = measure("gradio", [sys.executable, GRADIO_APP], port, "/", gradio_client, env)

    for result in (ours, theirs):
        print(json.dumps(result))
    print(
        f"starcast / gradio: {ours['requests_per_s'] / theirs['requests_per_s']:.2f}x requests/s, "
        f"p99 {ours['p99_ms'] / theirs['p99_ms']:.2f}x, peak RSS {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}x; "
        f"same top label: {ours['labels'] == theirs['labels']}"
    )


main()
