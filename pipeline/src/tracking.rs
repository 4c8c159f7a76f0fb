//! Experiment tracking on an MLflow server through its REST API: a
//! training run's parameters, its metrics per epoch, its final figures and
//! its files, where a team that used MLflow from Colab looks for them.

use std::path::Path;

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error("the MLflow server at {url} could not be reached or refused {what}: {reason}")]
    Server {
        url: String,
        what: &'static str,
        reason: String,
    },
    #[error("could not read {path} to upload it: {source}")]
    Artifact {
        path: String,
        source: std::io::Error,
    },
}

/// An MLflow tracking server (`MLFLOW_TRACKING_URI`).
#[derive(Clone, Debug)]
pub struct MlflowServer {
    url: String,
    agent: ureq::Agent,
}

/// One run on the server, open until [`MlflowRun::finish`].
#[derive(Debug)]
pub struct MlflowRun {
    server: MlflowServer,
    pub run_id: String,
    pub experiment_id: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl MlflowServer {
    pub fn new(url: &str) -> Self {
        MlflowServer {
            url: url.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    fn call(
        &self,
        what: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TrackingError> {
        let url = format!("{}{path}", self.url);
        let request = self.agent.request(method, &url);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let failure = |reason: String| TrackingError::Server {
            url: self.url.clone(),
            what,
            reason,
        };
        match response {
            Ok(response) => response
                .into_json()
                .map_err(|e| failure(format!("its answer is not JSON ({e})"))),
            Err(ureq::Error::Status(code, response)) => {
                let body = response.into_string().unwrap_or_default();
                Err(failure(format!("status {code}: {body}")))
            }
            Err(e) => Err(failure(e.to_string())),
        }
    }

    /// The experiment's id, creating the experiment the first time.
    fn experiment(&self, name: &str) -> Result<String, TrackingError> {
        let path = format!(
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name={}",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        );
        // A missing experiment is an error answer; it is then created.
        if let Ok(found) = self.call("the experiment lookup", "GET", &path, None)
            && let Some(id) = found["experiment"]["experiment_id"].as_str()
        {
            return Ok(id.to_string());
        }
        let created = self.call(
            "creating the experiment",
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({ "name": name })),
        )?;
        Ok(created["experiment_id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Opens a run named `name` in `experiment`, with `parameters` logged.
    pub fn start_run(
        &self,
        experiment: &str,
        name: &str,
        parameters: &[(String, String)],
    ) -> Result<MlflowRun, TrackingError> {
        let experiment_id = self.experiment(experiment)?;
        let created = self.call(
            "creating the run",
            "POST",
            "/api/2.0/mlflow/runs/create",
            Some(json!({
                "experiment_id": experiment_id,
                "run_name": name,
                "start_time": now_ms(),
                "tags": [{"key": "mlflow.source.name", "value": "starcast"}],
            })),
        )?;
        let run = MlflowRun {
            server: self.clone(),
            run_id: created["run"]["info"]["run_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            experiment_id,
        };
        let params: Vec<Value> = parameters
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect();
        run.log_batch(json!({ "params": params }))?;
        Ok(run)
    }
}

impl MlflowRun {
    fn log_batch(&self, mut batch: Value) -> Result<(), TrackingError> {
        batch["run_id"] = json!(self.run_id);
        self.server.call(
            "logging to the run",
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            Some(batch),
        )?;
        Ok(())
    }

    /// Logs `(name, value)` figures at `step` (an epoch; 0 for final figures).
    pub fn log_metrics(&self, step: usize, metrics: &[(&str, f64)]) -> Result<(), TrackingError> {
        let timestamp = now_ms();
        let metrics: Vec<Value> = metrics
            .iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(key, value)| {
                json!({ "key": key, "value": value, "timestamp": timestamp, "step": step })
            })
            .collect();
        self.log_batch(json!({ "metrics": metrics }))
    }

    /// Uploads a file to the run's artifacts through the server's artifact proxy.
    pub fn log_artifact(&self, file: &Path) -> Result<(), TrackingError> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(file).map_err(|source| TrackingError::Artifact {
            path: file.display().to_string(),
            source,
        })?;
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{}/artifacts/{name}",
            self.server.url, self.experiment_id, self.run_id
        );
        self.server
            .agent
            .put(&url)
            .send_bytes(&bytes)
            .map_err(|e| TrackingError::Server {
                url: self.server.url.clone(),
                what: "the artifact upload",
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Marks the run finished (or failed).
    pub fn finish(self, succeeded: bool) -> Result<(), TrackingError> {
        let status = if succeeded { "FINISHED" } else { "FAILED" };
        self.server.call(
            "closing the run",
            "POST",
            "/api/2.0/mlflow/runs/update",
            Some(json!({ "run_id": self.run_id, "status": status, "end_time": now_ms() })),
        )?;
        Ok(())
    }
}
