"""Times one run of the daily loop on the offline defaults, as the server's
scheduler runs it: collect horoscopes -> process -> train the horoscope
model (LoRA on the packaged SmolLM2) -> evaluate -> promote, and the actor
model's retraining when its photos changed (the offline defaults carry no
actor photos, so that step is skipped and says so).

No horoscope site is reachable offline: two stand-ins on loopback serve
today's pages in the shapes of pipeline/sources.toml (a page per sign; one
page with every sign), and DAYS earlier days sit in the raw store as
`collect` writes them, so training sees a week's worth by default.

Usage: python bench/daily_loop.py STARCAST [DAYS]   (bench/daily_loop.sh builds STARCAST)
Prints one JSON object: the run's status and seconds, and each step's."""

import csv
import functools
import http.server
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGNS = ["aries", "taurus", "gemini", "cancer", "leo", "virgo", "libra", "scorpio",
         "sagittarius", "capricorn", "aquarius", "pisces"]
OPENING = ["The Moon moves through your house of work", "Venus smiles on your plans",
           "Mercury asks you to slow down", "The Sun lights up your social sector",
           "Mars gives you energy", "Jupiter widens your horizons"]
MIDDLE = ["so finish one task before you start another", "and a friend brings welcome news by evening",
          "so listen more than you speak at meetings", "and money matters look steady this week",
          "so take a short walk before any big decision", "and an old idea deserves a second look"]
CLOSING = ["Lucky colour: green.", "Lucky number: seven.", "Keep your evening free for family.",
           "Say yes to a small adventure.", "Rest early tonight.", "Call someone you miss."]
TOKEN = "bench-token"


def horoscope(rng):
    """Four sentences: 300-500 characters, the length `process` keeps."""
    while True:
        text = " ".join(f"{rng.choice(OPENING)}, {rng.choice(MIDDLE)}. {rng.choice(CLOSING)}"
                        for _ in range(3))
        if 300 < len(text) < 500:
            return text


def write_sites(root, rng):
    for sign in SIGNS:
        page = root / "a" / sign
        page.mkdir(parents=True)
        (page / "index.html").write_text(
            f'<html><body><article class="horoscope"><div class="text"><p>{horoscope(rng)}</p>'
            "</div></article></body></html>")
    (root / "b").mkdir()
    sections = "".join(f'<section class="sign"><h2>{sign}</h2><p>{horoscope(rng)}</p></section>'
                       for sign in SIGNS)
    (root / "b" / "index.html").write_text(f"<html><body>{sections}</body></html>")


def write_earlier_days(raw, days, rng):
    for back in range(1, days + 1):
        day = (date.today() - timedelta(days=back)).isoformat()
        folder = raw / f"date={day}"
        folder.mkdir(parents=True)
        for source in ["site-a", "site-b"]:
            with open(folder / f"{source}.csv", "w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["date", "sign", "text", "source"])
                for sign in SIGNS:
                    writer.writerow([day, sign, horoscope(rng), source])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_sites(root):
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def offline_day(work, days, rng):
    """A data folder under `work` with the default models and DAYS earlier
    days of horoscopes, and the stand-in sites serving today's: the data
    folder and the sources file that points `collect` at them."""
    data = work / "data"
    data.mkdir()
    (data / "models").symlink_to(ROOT / "data" / "models")
    write_earlier_days(data / "raw", days, rng)
    sites = work / "sites"
    write_sites(sites, rng)
    site_port = serve_sites(sites)
    sources = work / "sources.toml"
    sources.write_text(f"""
[[source]]
name = "site-a"
urls = ["http://127.0.0.1:{site_port}/a/{{sign}}/"]
item = "article.horoscope"
text = "div.text p"

[[source]]
name = "site-b"
urls = ["http://127.0.0.1:{site_port}/b/"]
item = "section.sign"
sign = "h2"
text = "p"
""")
    return data, sources


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.load(response)


def main():
    starcast = sys.argv[1]
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="starcast-daily-"))
    data, sources = offline_day(work, days, rng)
    port = free_port()
    server = subprocess.Popen(
        [starcast, "serve", "--port", str(port), "--data", str(data), "--sources", str(sources),
         "--admin-token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                request(f"{base}/api/pipeline/runs")
                break
            except OSError:
                time.sleep(0.5)
        run = request(f"{base}/api/admin/pipeline/runs", method="POST")
        while run["status"] == "running":
            time.sleep(2)
            run = next(r for r in request(f"{base}/api/pipeline/runs") if r["id"] == run["id"])
    finally:
        server.terminate()
        server.wait()
    print(json.dumps({
        "earlier_days": days,
        "horoscopes_collected_today": 2 * len(SIGNS),
        "threads": os.cpu_count(),
        "status": run["status"],
        "seconds": round(run["seconds"], 1),
        "steps": [{"name": s["name"], "status": s["status"], "seconds": round(s["seconds"], 1),
                   "metrics": s["metrics"], "log": s["log"][-300:] if s["status"] != "succeeded" else ""}
                  for s in run["steps"]],
    }, indent=1))


if __name__ == "__main__":
    main()
