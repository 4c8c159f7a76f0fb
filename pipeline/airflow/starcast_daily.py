"""Starcast's daily loop as an Airflow 3 DAG: the same `starcast` subcommands
the server's own scheduler runs, for teams that already drive their jobs
with Airflow. Copy this file into Airflow's `dags/` folder and set the
Airflow variables `STARCAST` (the binary), `STARCAST_DATA` (the data
folder), `STARCAST_REGISTRY` (the registry: a folder, or `s3://bucket/prefix`
shared with the servers) and `STARCAST_SOURCES` (the horoscope sites).

Each step hands its output to the next as a path under the data folder and
as an asset, so other DAGs can run when new horoscopes or a new model
version land. A step with nothing to do exits 99, which Airflow records as
skipped, as the server's scheduler does. `scripts/check-airflow.sh` runs
this DAG with a real Airflow against loopback stand-ins of the sites.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

STARCAST = "{{ var.value.get('STARCAST', 'starcast') }}"
DATA = "{{ var.value.get('STARCAST_DATA', 'data') }}"
REGISTRY = "{{ var.value.get('STARCAST_REGISTRY', var.value.get('STARCAST_DATA', 'data') ~ '/registry') }}"
SOURCES = "{{ var.value.get('STARCAST_SOURCES', 'pipeline/sources.toml') }}"

RAW_HOROSCOPES = Asset(name="starcast_raw_horoscopes", uri="starcast://data/raw")
PROCESSED_HOROSCOPES = Asset(
    name="starcast_processed_horoscopes", uri="starcast://data/processed/horoscopes.parquet"
)
FLAGGED_PHOTOS = Asset(name="starcast_flagged_photos", uri="starcast://data/datasets/flagged")
HOROSCOPE_MODEL = Asset(name="starcast_horoscope_model", uri="starcast://registry/horoscope")
ACTOR_MODEL = Asset(name="starcast_actor_model", uri="starcast://registry/actors")

# Exit 99 unless the folder has files: Airflow marks the task skipped.
NEEDS_FILES = 'test -n "$(ls -A {folder} 2>/dev/null)" || {{ echo "{why}"; exit 99; }}'
# Exit 99 unless the registry serves an actor version.
NEEDS_SERVED_ACTORS = (
    f'{STARCAST} models list --registry {REGISTRY} | grep -q "^\\*" '
    '|| { echo "the registry serves no actor version"; exit 99; }'
)


@dag(
    dag_id="starcast_daily",
    description=(
        "collect -> process -> train, evaluate and promote the horoscope model; "
        "retrain the actor model on its photos; evaluate the served one on the photos users flagged"
    ),
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    params={
        "train_options": Param(
            "",
            type="string",
            description="Extra options for both `starcast train` steps, e.g. --epochs 1",
        )
    },
    tags=["starcast"],
)
def starcast_daily():
    @task.bash(outlets=[RAW_HOROSCOPES])
    def collect_horoscopes() -> str:
        return f"{STARCAST} collect horoscopes --sources {SOURCES} --store {DATA}"

    @task.bash(inlets=[RAW_HOROSCOPES], outlets=[PROCESSED_HOROSCOPES])
    def process_horoscopes() -> str:
        return (
            f"{STARCAST} process horoscopes --input {DATA}/raw "
            f"--output {DATA}/processed/horoscopes.parquet"
        )

    # LoRA adapters over SmolLM2, served when their held-out perplexity
    # beats the served model's on the same horoscopes.
    @task.bash(inlets=[PROCESSED_HOROSCOPES], outlets=[HOROSCOPE_MODEL])
    def train_horoscope() -> str:
        return (
            f"{STARCAST} train horoscope --data {DATA}/processed/horoscopes.parquet "
            f"--base {DATA}/models/smollm2-135m-instruct --registry {REGISTRY} "
            f"--checkpoint {DATA}/checkpoints/horoscope {{{{ params.train_options }}}}"
        )

    # Registers a new version and serves it only if it beats the served one
    # on the same held-out photos; running servers pick it up by themselves.
    # Unlike the server's scheduler it runs whenever there are photos, not
    # only when they changed since the served version was trained.
    @task.bash(outlets=[ACTOR_MODEL])
    def train_actors() -> str:
        photos = f"{DATA}/datasets/actors"
        return (
            NEEDS_FILES.format(folder=photos, why="no actor photos to train on")
            + f" && {STARCAST} train actors --data {photos} --registry {REGISTRY} "
            f"--checkpoint {DATA}/checkpoints/actors {{{{ params.train_options }}}}"
        )

    @task.bash(outlets=[FLAGGED_PHOTOS])
    def gather_flagged_photos() -> str:
        return f"{STARCAST} dataset flags --data {DATA} --out {DATA}/datasets/flagged"

    @task.bash(inlets=[FLAGGED_PHOTOS, ACTOR_MODEL])
    def evaluate_served_on_flagged() -> str:
        flagged = f"{DATA}/datasets/flagged"
        return (
            NEEDS_FILES.format(folder=flagged, why="no flagged photo says who is in it")
            + f" && {NEEDS_SERVED_ACTORS}"
            + f" && {STARCAST} evaluate --served actors --registry {REGISTRY} "
            f"--data {flagged} --skip-unknown-actors"
        )

    collect_horoscopes() >> process_horoscopes() >> train_horoscope()
    [train_actors(), gather_flagged_photos()] >> evaluate_served_on_flagged()


starcast_daily()
