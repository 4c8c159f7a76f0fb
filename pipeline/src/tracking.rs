//! Experiment tracking on an MLflow server through its REST API: a
//! training run's parameters, its metrics per epoch, its final figures and
//! its files, where a team that used MLflow from Colab looks for them; and
//! MLflow's model registry as a mirror of Starcast's, the served version
//! under the alias `@champion` and a new candidate under `@challenger`.

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

/// MLflow's alias for the version Starcast serves.
pub const CHAMPION: &str = "champion";
/// MLflow's alias for a registered version that is not served (yet).
pub const CHALLENGER: &str = "challenger";
/// The model version tag that names the Starcast version it mirrors.
const STARCAST_VERSION_TAG: &str = "starcast_version";

/// What the server answered to one call.
enum Answer {
    Done(Value),
    /// Refused with an MLflow error code, e.g. `RESOURCE_DOES_NOT_EXIST`.
    Refused {
        code: String,
        reason: String,
    },
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
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

    fn failure(&self, what: &'static str, reason: String) -> TrackingError {
        TrackingError::Server {
            url: self.url.clone(),
            what,
            reason,
        }
    }

    fn send(
        &self,
        what: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, TrackingError> {
        let url = format!("{}{path}", self.url);
        let request = self.agent.request(method, &url);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match response {
            Ok(response) => response
                .into_json()
                .map(Answer::Done)
                .map_err(|e| self.failure(what, format!("its answer is not JSON ({e})"))),
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                let code = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|error| error["error_code"].as_str().map(String::from))
                    .unwrap_or_default();
                Ok(Answer::Refused {
                    code,
                    reason: format!("status {status}: {body}"),
                })
            }
            Err(e) => Err(self.failure(what, e.to_string())),
        }
    }

    fn call(
        &self,
        what: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TrackingError> {
        match self.send(what, method, path, body)? {
            Answer::Done(answer) => Ok(answer),
            Answer::Refused { reason, .. } => Err(self.failure(what, reason)),
        }
    }

    /// A call whose refusal with `code` means "nothing there" (`None`).
    fn call_unless(
        &self,
        code: &str,
        what: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, TrackingError> {
        match self.send(what, method, path, body)? {
            Answer::Done(answer) => Ok(Some(answer)),
            Answer::Refused { code: refused, .. } if refused == code => Ok(None),
            Answer::Refused { reason, .. } => Err(self.failure(what, reason)),
        }
    }

    /// The MLflow version of registered model `model` that mirrors
    /// Starcast's `version`, registering it (and the model) the first
    /// time; `source` says where its files are, `run_id` the run that
    /// trained it, if it was tracked.
    pub fn register_version(
        &self,
        model: &str,
        version: &str,
        source: &str,
        run_id: Option<&str>,
    ) -> Result<String, TrackingError> {
        if let Some(number) = self.mirrored_version(model, version)? {
            return Ok(number);
        }
        self.call_unless(
            "RESOURCE_ALREADY_EXISTS",
            "creating the registered model",
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({ "name": model })),
        )?;
        let mut request = json!({
            "name": model,
            "source": source,
            "tags": [{ "key": STARCAST_VERSION_TAG, "value": version }],
            "description": format!("Starcast registry version {version}"),
        });
        if let Some(run_id) = run_id {
            request["run_id"] = json!(run_id);
        }
        let created = self.call(
            "registering the model version",
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            Some(request),
        )?;
        created["model_version"]["version"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| {
                self.failure(
                    "registering the model version",
                    format!("its answer names no version: {created}"),
                )
            })
    }

    /// Mirrors Starcast's `version` into registered model `model` (see
    /// [`MlflowServer::register_version`]) under the alias its role in
    /// Starcast's registry has: `@champion` when it is `served`, else
    /// `@challenger`. A new champion takes the challenger alias off itself.
    /// Returns the MLflow version number.
    pub fn mirror(
        &self,
        model: &str,
        version: &str,
        source: &str,
        run_id: Option<&str>,
        served: bool,
    ) -> Result<String, TrackingError> {
        let number = self.register_version(model, version, source, run_id)?;
        if !served {
            self.set_alias(model, CHALLENGER, &number)?;
            return Ok(number);
        }
        self.set_alias(model, CHAMPION, &number)?;
        if self.alias(model, CHALLENGER)?.as_deref() == Some(number.as_str()) {
            self.delete_alias(model, CHALLENGER)?;
        }
        Ok(number)
    }

    /// The MLflow version of `model` tagged with Starcast's `version`.
    fn mirrored_version(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<String>, TrackingError> {
        let filter = format!("name='{}'", model.replace('\'', ""));
        let path = format!(
            "/api/2.0/mlflow/model-versions/search?filter={}&max_results=10000",
            encoded(&filter)
        );
        let found = self.call("searching the model versions", "GET", &path, None)?;
        Ok(found["model_versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|candidate| {
                candidate["tags"].as_array().is_some_and(|tags| {
                    tags.iter()
                        .any(|tag| tag["key"] == STARCAST_VERSION_TAG && tag["value"] == version)
                })
            })
            .and_then(|candidate| candidate["version"].as_str().map(String::from)))
    }

    /// The MLflow version number `alias` points at in `model`, if any.
    pub fn alias(&self, model: &str, alias: &str) -> Result<Option<String>, TrackingError> {
        // Read from the model's alias list: a missing alias is refused with
        // a generic code that says no more than a bad request would.
        let path = format!(
            "/api/2.0/mlflow/registered-models/get?name={}",
            encoded(model)
        );
        let found = self.call_unless(
            "RESOURCE_DOES_NOT_EXIST",
            "reading the registered model",
            "GET",
            &path,
            None,
        )?;
        Ok(found.and_then(|found| {
            found["registered_model"]["aliases"]
                .as_array()?
                .iter()
                .find(|entry| entry["alias"] == alias)
                .and_then(|entry| entry["version"].as_str().map(String::from))
        }))
    }

    /// Points `alias` of `model` at MLflow version `number`.
    pub fn set_alias(&self, model: &str, alias: &str, number: &str) -> Result<(), TrackingError> {
        self.call(
            "setting the alias",
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            Some(json!({ "name": model, "alias": alias, "version": number })),
        )?;
        Ok(())
    }

    /// Removes `alias` from `model`.
    pub fn delete_alias(&self, model: &str, alias: &str) -> Result<(), TrackingError> {
        self.call(
            "removing the alias",
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            Some(json!({ "name": model, "alias": alias })),
        )?;
        Ok(())
    }

    /// The experiment's id, creating the experiment the first time.
    fn experiment(&self, name: &str) -> Result<String, TrackingError> {
        let path = format!(
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name={}",
            encoded(name)
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
