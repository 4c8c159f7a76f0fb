//! Resuming after a crash: after every epoch the trained variables,
//! AdamW's moments, the best epoch so far and the history go to a
//! checkpoint folder, each file written aside and renamed, `state.json`
//! (which names the epoch's files) last; a rerun of the same training
//! (same photos, labels and options) continues after the last finished
//! epoch with the steps an unbroken run would take.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use candle_core::Device;
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use starcast_model::vision::NamedTensors;

use crate::optimizer::AdamW;

/// An epoch's figures as a training loop records them.
pub trait EpochFigures: Clone + Serialize + DeserializeOwned {
    fn epoch(&self) -> usize;
}

const STATE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("could not write the checkpoint in {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the checkpoint in {path} can't be read ({reason}): delete the folder to start afresh")]
    Read { path: PathBuf, reason: String },
}

/// The best epoch so far: its figures, the trained variables then, and
/// what else the loop keeps of it (a classifier: its validation answers).
pub struct BestEpoch<R, X> {
    pub record: R,
    pub tensors: NamedTensors,
    pub outcomes: X,
}

/// Where a run stands after its last finished epoch.
pub struct Resumed<R, X> {
    pub epoch: usize,
    pub step: usize,
    pub history: Vec<R>,
    pub best: Option<BestEpoch<R, X>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "R: EpochFigures, X: Serialize + DeserializeOwned")]
struct State<R, X> {
    identity: String,
    epoch: usize,
    step: usize,
    history: Vec<R>,
    best: Option<(R, X)>,
}

fn variables_file(epoch: usize) -> String {
    format!("variables-{epoch}.safetensors")
}

fn optimiser_file(epoch: usize) -> String {
    format!("adamw-{epoch}.safetensors")
}

fn best_file(epoch: usize) -> String {
    format!("best-{epoch}.safetensors")
}

/// A checkpoint folder for one training run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    identity: String,
}

impl Checkpoint {
    /// The checkpoint in `dir` of the run that `identity` (anything that
    /// tells runs apart: options, labels, photos) describes.
    pub fn new(dir: impl Into<PathBuf>, identity: &impl Hash) -> Self {
        let mut hasher = DefaultHasher::new();
        identity.hash(&mut hasher);
        Checkpoint {
            dir: dir.into(),
            identity: format!("{:016x}", hasher.finish()),
        }
    }

    /// The state to resume from, loading the variables into `varmap` and
    /// the moments into `optimiser`; none when there is no checkpoint or it
    /// belongs to another run.
    pub fn resume<R: EpochFigures, X: Serialize + DeserializeOwned>(
        &self,
        varmap: &mut VarMap,
        optimiser: &mut AdamW,
    ) -> Result<Option<Resumed<R, X>>, CheckpointError> {
        let state_path = self.dir.join(STATE);
        if !state_path.is_file() {
            return Ok(None);
        }
        let unreadable = |reason: String| CheckpointError::Read {
            path: self.dir.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&state_path).map_err(|e| unreadable(e.to_string()))?;
        let state: State<R, X> =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        if state.identity != self.identity {
            return Ok(None);
        }
        varmap
            .load(self.dir.join(variables_file(state.epoch)))
            .map_err(|e| unreadable(e.to_string()))?;
        optimiser
            .load(&self.dir.join(optimiser_file(state.epoch)))
            .map_err(|e| unreadable(e.to_string()))?;
        let best = match state.best {
            Some((record, outcomes)) => Some(BestEpoch {
                tensors: candle_core::safetensors::load(
                    self.dir.join(best_file(record.epoch())),
                    &Device::Cpu,
                )
                .map_err(|e| unreadable(e.to_string()))?,
                record,
                outcomes,
            }),
            None => None,
        };
        Ok(Some(Resumed {
            epoch: state.epoch,
            step: state.step,
            history: state.history,
            best,
        }))
    }

    /// Records a finished epoch; `best_changed` says whether its network
    /// is the new best one.
    #[allow(clippy::too_many_arguments)]
    pub fn save<R: EpochFigures, X: Serialize + DeserializeOwned + Clone>(
        &self,
        varmap: &VarMap,
        optimiser: &AdamW,
        epoch: usize,
        step: usize,
        history: &[R],
        best: Option<&BestEpoch<R, X>>,
        best_changed: bool,
    ) -> Result<(), CheckpointError> {
        let failed = |reason: String| CheckpointError::Write {
            path: self.dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| failed(e.to_string()))?;
        let aside = |name: &str| self.dir.join(format!(".{name}.partial"));
        let place = |name: &str| {
            std::fs::rename(aside(name), self.dir.join(name)).map_err(|e| failed(e.to_string()))
        };
        let variables = variables_file(epoch);
        varmap
            .save(aside(&variables))
            .map_err(|e| failed(e.to_string()))?;
        place(&variables)?;
        let moments = optimiser_file(epoch);
        optimiser
            .save(&aside(&moments))
            .map_err(|e| failed(e.to_string()))?;
        place(&moments)?;
        if let (true, Some(best)) = (best_changed, best) {
            let name = best_file(best.record.epoch());
            candle_core::safetensors::save(&best.tensors, aside(&name))
                .map_err(|e| failed(e.to_string()))?;
            place(&name)?;
        }
        let state = State {
            identity: self.identity.clone(),
            epoch,
            step,
            history: history.to_vec(),
            best: best.map(|b| (b.record.clone(), b.outcomes.clone())),
        };
        let text = serde_json::to_string(&state).expect("plain data serialises");
        std::fs::write(aside(STATE), text).map_err(|e| failed(e.to_string()))?;
        place(STATE)?;
        // Older epochs' files are no longer named by the state.
        let kept = [
            variables,
            moments,
            best.map_or(String::new(), |b| best_file(b.record.epoch())),
        ];
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".safetensors") && !kept.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Removes the checkpoint once the run has finished.
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
