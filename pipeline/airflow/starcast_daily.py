"""Starcast's daily loop as an Airflow DAG: the same `starcast` subcommands
the server's own scheduler runs, for teams that already drive their jobs
with Airflow. Copy this file into Airflow's `dags/` folder and set the
`STARCAST` (the binary) and `STARCAST_DATA` (the data folder or bucket)
Airflow variables.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator

STARCAST = Variable.get("STARCAST", default_var="starcast")
DATA = Variable.get("STARCAST_DATA", default_var="data")

with DAG(
    dag_id="starcast_daily",
    description="collect -> process -> train -> evaluate -> promote the horoscope model; clean photos -> train -> evaluate -> promote the actor model",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
) as dag:
    collect = BashOperator(
        task_id="collect_horoscopes",
        bash_command=f"{STARCAST} collect horoscopes --sources pipeline/sources.toml --store {DATA}",
    )
    process = BashOperator(
        task_id="process_horoscopes",
        bash_command=(
            f"{STARCAST} process horoscopes --input {DATA}/raw "
            f"--output {DATA}/processed/horoscopes.parquet"
        ),
    )
    # LoRA adapters over SmolLM2, served when their held-out perplexity
    # beats the served model's on the same horoscopes.
    train_horoscope = BashOperator(
        task_id="train_horoscope",
        bash_command=(
            f"{STARCAST} train horoscope --data {DATA}/processed/horoscopes.parquet "
            f"--base {DATA}/models/smollm2-135m-instruct --registry {DATA}/registry"
        ),
    )
    clean = BashOperator(
        task_id="clean_actor_photos",
        bash_command=f"{STARCAST} dataset clean {DATA}/datasets/actors",
    )
    # Registers a new version and serves it only if it beats the served one
    # on the same held-out photos; running servers pick it up by themselves.
    train = BashOperator(
        task_id="train_actors",
        bash_command=(
            f"{STARCAST} train actors --data {DATA}/datasets/actors "
            f"--registry {DATA}/registry --metric accuracy --margin 0.0"
        ),
    )

    collect >> process >> train_horoscope
    clean >> train
