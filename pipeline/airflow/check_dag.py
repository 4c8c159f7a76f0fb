"""Runs the `starcast_daily` DAG once with a real Airflow 3 (`airflow dags
test`, tasks in this process, no scheduler), as scripts/check-airflow.sh
sets it up: the `starcast` binary, and bench/daily_loop.py's offline day (a
fresh data folder with the default models, loopback stand-ins for the
horoscope sites, one earlier day of collected horoscopes). Training is
kept to one epoch so the check ends in minutes.

Passes when every task ends as it should (the horoscope steps succeed; the
actor steps are skipped, as the offline defaults have no actor photos and
no flag), the processed horoscopes are written, and the registry holds the
trained horoscope version.

Usage: AIRFLOW=.../bin/airflow python check_dag.py STARCAST SECONDS
(scripts/check-airflow.sh sets it up)
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from daily_loop import offline_day  # noqa: E402

EXPECTED = {
    "collect_horoscopes": "success",
    "process_horoscopes": "success",
    "train_horoscope": "success",
    "train_actors": "skipped",
    "gather_flagged_photos": "success",
    "evaluate_served_on_flagged": "skipped",
}


def main():
    starcast, seconds = sys.argv[1], float(sys.argv[2])
    work = Path(tempfile.mkdtemp(prefix="starcast-airflow-"))
    try:
        check(starcast, seconds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(starcast, seconds, work):
    airflow = os.environ["AIRFLOW"]
    data, sources = offline_day(work, 1, random.Random(1))
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "pipeline" / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_VAR_STARCAST=starcast,
        AIRFLOW_VAR_STARCAST_DATA=str(data),
        AIRFLOW_VAR_STARCAST_REGISTRY=str(data / "registry"),
        AIRFLOW_VAR_STARCAST_SOURCES=str(sources),
        RUST_LOG="warn",
        # Airflow's CLI warns on stdout that graphviz is missing.
        PYTHONWARNINGS="ignore",
    )
    env.pop("STARCAST_REGISTRY", None)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    conf = json.dumps({"train_options": "--epochs 1"})
    test = subprocess.run(
        [airflow, "dags", "test", "starcast_daily", "2026-12-01", "--conf", conf],
        env=env, capture_output=True, text=True, timeout=seconds)
    took = time.monotonic() - started
    log = test.stdout + test.stderr
    states = task_states(airflow, env)
    problems = [f"{task}: {states.get(task)} (expected {state})"
                for task, state in EXPECTED.items() if states.get(task) != state]
    if not (data / "processed" / "horoscopes.parquet").is_file():
        problems.append("no processed horoscopes")
    listed = subprocess.run(
        [starcast, "models", "--task", "horoscope", "list", "--registry", str(data / "registry")],
        env=env, capture_output=True, text=True).stdout
    if not listed.lstrip("* ").startswith("v1 "):
        problems.append(f"no horoscope version in the registry: {listed!r}")
    if test.returncode != 0 or problems:
        print(log[-6000:])
        raise SystemExit(f"the DAG check failed: {problems or test.returncode}")
    print(json.dumps({"seconds": round(took, 1), "states": states, "registry": listed.strip()}, indent=1))


def json_answer(airflow, env, *args):
    """An Airflow CLI command's JSON output (the line it is on)."""
    out = subprocess.run([airflow, *args, "--output", "json"], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("[")))


def task_states(airflow, env):
    runs = json_answer(airflow, env, "dags", "list-runs", "starcast_daily")
    if not runs:
        return {}
    rows = json_answer(airflow, env, "tasks", "states-for-dag-run", "starcast_daily",
                       runs[0]["run_id"])
    return {row["task_id"]: row["state"] for row in rows}


if __name__ == "__main__":
    main()
