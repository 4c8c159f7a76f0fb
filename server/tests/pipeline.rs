//! The daily loop: real `starcast` subcommands as steps, retries, a step
//! skipped when what it needs failed, runs that never overlap, the figures
//! each step reports, records an admin can read and start over HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{
    ADMIN_TOKEN, THREE_CLASS_CONFIG, photo_dataset, register_version, server_with_admin,
    three_class_safetensors,
};
use starcast_api::{PipelineRun, RunStatus, Trigger};
use starcast_jobs::scheduler::{Guard, Pipeline, PipelineError, Step, parse_schedule};
use starcast_pipeline::dataset::fingerprint;
use starcast_pipeline::records::{self, Records};
use starcast_pipeline::registry::{Registry, Task};
use starcast_pipeline::runs::RunRecords;

fn program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_starcast"))
}

fn step(name: &str, args: &[&str], after: Option<&str>) -> Step {
    Step {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        after: after.map(String::from),
        guard: Guard::Always,
    }
}

/// One day of collected horoscopes, as `starcast collect` writes them.
fn raw_day(root: &Path) -> PathBuf {
    let raw = root.join("raw");
    let day = raw.join("date=2026-11-21");
    std::fs::create_dir_all(&day).unwrap();
    let text = "Сегодня звезды обещают удачу в делах и спокойствие в семье. ".repeat(6);
    let text: String = text.chars().take(400).collect();
    std::fs::write(
        day.join("site-a.csv"),
        format!("date,sign,text,source\n2026-11-21,Овен,\"{text}\",site-a\n"),
    )
    .unwrap();
    raw
}

/// The records database a test's data folder `dir` keeps.
async fn records_in(dir: &Path) -> Records {
    Records::open(&records::default_url(dir)).await.unwrap()
}

/// `steps` run by `program` over the data folder `dir`, as a server runs them.
async fn pipeline_in(dir: &Path, program: PathBuf, steps: Vec<Step>) -> Pipeline {
    Pipeline::new(program, steps, dir.join("runs"), records_in(dir).await).unwrap()
}

async fn finished(pipeline: &Pipeline) -> PipelineRun {
    for _ in 0..600 {
        if let Some(run) = pipeline.history(1).await.into_iter().next()
            && run.status != RunStatus::Running
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the run did not finish within a minute");
}

#[tokio::test]
async fn steps_run_retry_and_skip_and_runs_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_day(dir.path());
    let processed = dir.path().join("processed.csv");
    let missing = dir.path().join("no-sources.toml");
    let steps = vec![
        step(
            "process",
            &[
                "process",
                "horoscopes",
                "--input",
                raw.to_str().unwrap(),
                "--output",
                processed.to_str().unwrap(),
            ],
            None,
        ),
        step(
            "collect",
            &[
                "collect",
                "horoscopes",
                "--sources",
                missing.to_str().unwrap(),
                "--store",
                dir.path().to_str().unwrap(),
            ],
            None,
        ),
        step("after collect", &["--version"], Some("collect")),
    ];
    let pipeline = pipeline_in(dir.path(), program(), steps)
        .await
        .with_retries(1, Duration::from_millis(10));
    let started = pipeline.start(Trigger::Admin).await.unwrap();
    assert_eq!(started.status, RunStatus::Running);
    assert!(matches!(
        pipeline.start(Trigger::Admin).await,
        Err(PipelineError::AlreadyRunning)
    ));

    let run = finished(&pipeline).await;
    assert_eq!(run.id, started.id);
    assert_eq!(run.status, RunStatus::Failed);
    let [process, collect, after] = &run.steps[..] else {
        panic!("{run:?}")
    };
    assert_eq!(process.status, RunStatus::Succeeded, "{}", process.log);
    assert!(processed.is_file());
    assert_eq!(
        process.metrics.get("rows_read"),
        Some(&1.0),
        "the step's figures: {:?}",
        process.metrics
    );
    assert_eq!((collect.status, collect.attempts), (RunStatus::Failed, 2));
    assert!(collect.log.contains("no-sources.toml"), "{}", collect.log);
    assert!(
        collect.metrics.is_empty(),
        "a failed step reports no figures"
    );
    assert_eq!(after.status, RunStatus::Skipped);
    assert!(after.log.contains("'collect' did not succeed"));
    assert!(
        pipeline.start(Trigger::Admin).await.is_ok(),
        "the lock is free again"
    );
    finished(&pipeline).await;
}

#[tokio::test]
async fn training_is_skipped_while_the_served_version_saw_the_same_photos() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("actors");
    std::fs::create_dir_all(photos.join("Ada")).unwrap();
    std::fs::write(photos.join("Ada/1.jpg"), b"photo").unwrap();
    let registry = Registry::new(dir.path().join("registry"));
    let files = [("config.json", THREE_CLASS_CONFIG.as_bytes().to_vec())];
    let id = register_version(&registry, &files, &fingerprint(&photos).unwrap()).id;
    registry.promote(Task::Actors, &id, "test").unwrap();
    let train = Step {
        name: "train".into(),
        args: vec!["--version".into()],
        after: None,
        guard: Guard::DatasetChanged {
            dataset: photos.clone(),
            registry: registry.clone(),
        },
    };
    let pipeline = pipeline_in(dir.path(), program(), vec![train]).await;
    pipeline.start(Trigger::Schedule).await.unwrap();
    let run = finished(&pipeline).await;
    assert_eq!(run.steps[0].status, RunStatus::Skipped);
    assert!(
        run.steps[0].log.contains("trained on"),
        "{}",
        run.steps[0].log
    );

    std::fs::write(photos.join("Ada/2.jpg"), b"another photo").unwrap();
    pipeline.start(Trigger::Schedule).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let run = finished(&pipeline).await;
    assert_eq!(
        run.steps[0].status,
        RunStatus::Succeeded,
        "new photos: retrain"
    );
}

#[tokio::test]
async fn the_served_actor_model_is_checked_against_the_photos_users_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let flagged = dir.path().join("flagged");
    let registry = Registry::new(dir.path().join("registry"));
    let check = Step {
        name: "evaluate on flagged photos".into(),
        args: [
            "evaluate",
            "--served",
            "actors",
            "--registry",
            &registry.to_string(),
            "--data",
            flagged.to_str().unwrap(),
            "--skip-unknown-actors",
        ]
        .map(String::from)
        .to_vec(),
        after: None,
        guard: Guard::FlaggedPhotos {
            dataset: flagged.clone(),
            registry: registry.clone(),
        },
    };
    let pipeline = pipeline_in(dir.path(), program(), vec![check]).await;
    let run_once = async || {
        pipeline.start(Trigger::Schedule).await.unwrap();
        finished(&pipeline).await.steps.remove(0)
    };

    let step = run_once().await;
    assert_eq!(step.status, RunStatus::Skipped);
    assert!(step.log.contains("no flagged photo"), "{}", step.log);

    photo_dataset(&flagged, &[("Cleo", "chelsea.png"), ("Ada", "coffee.png")]);
    let step = run_once().await;
    assert_eq!(step.status, RunStatus::Skipped);
    assert!(step.log.contains("serves no actor version"), "{}", step.log);

    // The served model names everyone Cleo: right on her five photos,
    // wrong on Ada's five.
    let files = [
        ("model.safetensors", three_class_safetensors()),
        ("config.json", THREE_CLASS_CONFIG.into()),
    ];
    let id = register_version(&registry, &files, "sha256:0").id;
    registry.promote(Task::Actors, &id, "test").unwrap();
    let step = run_once().await;
    assert_eq!(step.status, RunStatus::Succeeded, "{}", step.log);
    assert_eq!(
        step.metrics.get("photos"),
        Some(&10.0),
        "{:?}",
        step.metrics
    );
    assert_eq!(
        step.metrics.get("accuracy"),
        Some(&0.5),
        "{:?}",
        step.metrics
    );

    // A flag naming an actor the model doesn't know is counted, not fatal.
    photo_dataset(&flagged, &[("Zed", "coffee.png")]);
    let step = run_once().await;
    assert_eq!(step.status, RunStatus::Succeeded, "{}", step.log);
    assert_eq!(step.metrics.get("photos"), Some(&10.0));
    assert_eq!(step.metrics.get("photos_skipped"), Some(&5.0));
    assert!(
        step.log.contains("the model doesn't know Zed"),
        "{}",
        step.log
    );
}

#[tokio::test]
async fn an_admin_starts_a_run_over_http_and_everyone_can_read_the_runs() {
    let server = server_with_admin(Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_in(
        dir.path(),
        program(),
        vec![step("version", &["--version"], None)],
    )
    .await;
    let server = common::TestServer {
        state: server.state.clone().with_pipeline(pipeline.clone()),
        data: server.data,
    };
    let post = |token: Option<&str>| {
        let mut request = Request::post("/api/admin/pipeline/runs");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    };
    assert_eq!(
        server.send(post(None)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.send(post(Some("wrong"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = server.send(post(Some(ADMIN_TOKEN))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run = finished(&pipeline).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        run.steps[0].log.contains("starcast"),
        "{}",
        run.steps[0].log
    );
    let (status, body) = server.get("/api/pipeline/runs").await;
    assert_eq!(status, StatusCode::OK);
    let runs: Vec<PipelineRun> = serde_json::from_str(&body).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, Trigger::Admin);
    assert!(
        runs[0]
            .steps
            .iter()
            .all(|s| s.log.is_empty() && s.command.is_empty()),
        "paths and output are the admin's: {runs:?}"
    );
    let request = Request::get("/api/pipeline/runs")
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let body = common::text(server.send(request).await).await;
    let runs: Vec<PipelineRun> = serde_json::from_str(&body).unwrap();
    assert!(runs[0].steps[0].log.contains("starcast"), "{runs:?}");
}

#[test]
fn a_schedule_is_cron_or_a_sentence() {
    assert!(parse_schedule("0 3 * * *").is_ok());
    let err = parse_schedule("every day").unwrap_err();
    assert!(err.contains("0 3 * * *"), "{err}");
}

#[tokio::test]
async fn runs_cut_short_by_a_restart_are_closed_as_failed_and_other_replicas_runs_are_left() {
    let dir = tempfile::tempdir().unwrap();
    let step = |name: &str, status| starcast_api::StepRun {
        name: name.into(),
        command: format!("starcast {name}"),
        status,
        attempts: u32::from(status == RunStatus::Running),
        seconds: 0.0,
        log: String::new(),
        metrics: Default::default(),
    };
    let interrupted = PipelineRun {
        id: "20261123T044849.710Z".into(),
        trigger: Trigger::Admin,
        started: chrono::Utc::now(),
        seconds: 0.0,
        status: RunStatus::Running,
        steps: vec![
            step("collect", RunStatus::Succeeded),
            step("process", RunStatus::Running),
            step("train", RunStatus::Waiting),
        ],
    };
    let pipeline = pipeline_in(dir.path(), program(), Vec::new()).await;
    let runner = std::fs::read_to_string(dir.path().join("runs").join("runner")).unwrap();
    let records = records_in(dir.path()).await;
    RunRecords::new(records.clone(), runner)
        .keep(&interrupted)
        .await
        .unwrap();
    // Another replica's run, going on while this server restarts.
    let elsewhere = PipelineRun {
        id: "20261123T044850.000Z".into(),
        started: interrupted.started + chrono::Duration::seconds(1),
        ..interrupted.clone()
    };
    RunRecords::new(records, "another-replica")
        .keep(&elsewhere)
        .await
        .unwrap();

    pipeline.close_interrupted().await.unwrap();
    let runs = pipeline.history(10).await;
    assert_eq!(runs[0], elsewhere, "another replica's run is not touched");
    let run = runs[1].clone();
    assert_eq!(run.id, interrupted.id);
    assert_eq!(run.status, RunStatus::Failed);
    let statuses: Vec<RunStatus> = run.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Skipped]
    );
    assert!(run.steps[1].log.contains("the server stopped"), "{run:?}");
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    // The shell starts a grandchild that would outlive it, then waits.
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let steps = vec![step("hangs", &["-c", &script], None)];
    let pipeline = pipeline_in(dir.path(), PathBuf::from("/bin/sh"), steps)
        .await
        .with_retries(0, Duration::ZERO)
        .with_step_timeout(Duration::from_secs(1));
    pipeline.start(Trigger::Admin).await.unwrap();
    let run = finished(&pipeline).await;
    assert_eq!(run.steps[0].status, RunStatus::Failed);
    assert!(run.steps[0].log.contains("ran longer than 1 s"), "{run:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::path::Path::new("/proc").join(pid.trim()).join("stat");
    let mut alive = true;
    for _ in 0..50 {
        alive = std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z "));
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alive, "the step's grandchild {} outlived it", pid.trim());
}

#[tokio::test]
async fn two_servers_on_one_data_folder_never_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let slow = || vec![step("slow", &["-c", "sleep 2"], None)];
    let first = pipeline_in(dir.path(), PathBuf::from("/bin/sh"), slow()).await;
    let second = pipeline_in(dir.path(), PathBuf::from("/bin/sh"), slow()).await;
    first.start(Trigger::Admin).await.unwrap();
    assert!(matches!(
        second.start(Trigger::Schedule).await,
        Err(PipelineError::AlreadyRunning)
    ));
    finished(&first).await;
    for _ in 0..50 {
        if second.start(Trigger::Schedule).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the lock was not released after the first run");
}
