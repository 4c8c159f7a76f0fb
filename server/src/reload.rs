//! Hot reload: the server follows the registry, and serves each version
//! promoted (by `starcast models promote`, a training run or the
//! scheduler) from the next request on, without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use starcast_model::vision::ClassifierOptions;
use starcast_model::{ActorRecognizer, ServedModels, load_actor_recognizer};
use starcast_pipeline::registry::{Registry, Task, Version};

/// Loads a registered actor model version onto `device`.
pub fn load_version(
    version: &Version,
    device: &Device,
) -> anyhow::Result<Arc<dyn ActorRecognizer>> {
    let options = ClassifierOptions::on(device.clone());
    Ok(load_actor_recognizer(&version.path, &options)?)
}

/// Polls the registry every `interval` and swaps the actor model, loaded
/// onto `device`, when the served version changes. The model it replaced
/// stays loaded, so a rollback to it is served at once. A version that
/// fails to load is reported once and the model served before it stays;
/// one that can't be read or fetched (a bucket out of reach) is tried
/// again at the next poll.
pub async fn follow_registry(
    registry: Registry,
    models: ServedModels,
    mut current: Option<String>,
    interval: Duration,
    device: Device,
) {
    let mut failed: Option<String> = None;
    let mut replaced: Option<(String, Arc<dyn ActorRecognizer>)> = None;
    loop {
        tokio::time::sleep(interval).await;
        let lookup = registry.clone();
        let serving = tokio::task::spawn_blocking(move || lookup.serving_id(Task::Actors)).await;
        let id = match serving {
            Ok(Ok(Some(id))) => id,
            Ok(Ok(None)) => continue,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read the registry");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "the registry check stopped");
                continue;
            }
        };
        if current.as_ref() == Some(&id) || failed.as_ref() == Some(&id) {
            continue;
        }
        let serving = current.clone().zip(models.actors());
        if let Some((_, model)) = replaced.take_if(|(kept, _)| *kept == id) {
            models.serve_actors(model);
            tracing::info!(version = %id, "now serving the actor model served before, kept loaded");
            current = Some(id);
            replaced = serving;
            continue;
        }
        let fetch = (registry.clone(), id.clone());
        let version =
            tokio::task::spawn_blocking(move || fetch.0.version(Task::Actors, &fetch.1)).await;
        let version = match version {
            Ok(Ok(version)) => version,
            Ok(Err(error)) => {
                tracing::warn!(version = %id, %error, "could not fetch the promoted actor model; trying again at the next check");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "fetching the promoted model stopped");
                continue;
            }
        };
        let path: PathBuf = version.path.clone();
        let device = device.clone();
        match tokio::task::spawn_blocking(move || load_version(&version, &device)).await {
            Ok(Ok(model)) => {
                models.serve_actors(model);
                tracing::info!(version = %id, path = %path.display(), "now serving the promoted actor model");
                current = Some(id);
                failed = None;
                replaced = serving;
            }
            Ok(Err(error)) => {
                tracing::error!(version = %id, error = %format!("{error:#}"), "the promoted actor model does not load; still serving the previous one");
                failed = Some(id);
            }
            Err(error) => tracing::error!(%error, "loading the promoted model stopped"),
        }
    }
}
