//! The epoch scaffolding both training loops share: resuming from a
//! checkpoint, reporting progress, keeping the best epoch, stopping when
//! it stops improving, and checkpointing after every epoch. Each loop
//! brings how it trains and judges one epoch.

use candle_nn::VarMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use starcast_model::vision::NamedTensors;

use crate::checkpoint::{BestEpoch, Checkpoint, EpochFigures};
use crate::curves::EpochRecord;
use crate::error::TrainError;
use crate::optimizer::AdamW;

/// What a run tells its caller as it goes, for a progress bar.
#[derive(Debug)]
pub enum Progress<'a, E = EpochRecord> {
    Started {
        epochs: usize,
        steps_per_epoch: usize,
    },
    /// Continuing from a checkpoint after this epoch.
    Resumed {
        epoch: usize,
    },
    Step {
        loss: f64,
    },
    Epoch(&'a E),
}

/// One training loop's own part of an epoch.
pub(crate) trait Epoch {
    /// The epoch's figures, as the history records them.
    type Record: EpochFigures;
    /// What else the best epoch keeps (a classifier: its validation answers).
    type Outcomes: Serialize + DeserializeOwned + Clone;

    /// Trains epoch `epoch` (numbered from 1), counting optimiser steps in
    /// `step`, and evaluates the result.
    fn train(
        &mut self,
        epoch: usize,
        step: &mut usize,
        optimiser: &mut AdamW,
        progress: &mut dyn FnMut(Progress<Self::Record>),
    ) -> Result<(Self::Record, Self::Outcomes), TrainError>;

    /// Whether `record` is better than the best epoch so far.
    fn improves_on(&self, record: &Self::Record, best: &Self::Record) -> bool;

    /// The trained variables as they are now.
    fn snapshot(&self) -> Result<NamedTensors, TrainError>;
}

/// How many epochs, and when to stop early.
pub(crate) struct Schedule {
    pub epochs: usize,
    pub steps_per_epoch: usize,
    /// Epochs without a better one before training stops; none: never.
    pub patience: Option<usize>,
}

/// Every epoch's figures, and the best epoch (none when no epoch ran).
pub(crate) struct Epochs<R, X> {
    pub history: Vec<R>,
    pub best: Option<BestEpoch<R, X>>,
}

/// Runs the epochs `schedule` asks for, continuing after the last one
/// `checkpoint` holds, and clears the checkpoint when done.
pub(crate) fn run_epochs<E: Epoch>(
    epoch: &mut E,
    schedule: &Schedule,
    checkpoint: Option<Checkpoint>,
    varmap: &mut VarMap,
    optimiser: &mut AdamW,
    progress: &mut dyn FnMut(Progress<E::Record>),
) -> Result<Epochs<E::Record, E::Outcomes>, TrainError> {
    let resumed = match &checkpoint {
        Some(checkpoint) => checkpoint.resume(varmap, optimiser)?,
        None => None,
    };
    progress(Progress::Started {
        epochs: schedule.epochs,
        steps_per_epoch: schedule.steps_per_epoch,
    });
    let (first, mut step, mut history, mut best) = match resumed {
        Some(resumed) => {
            progress(Progress::Resumed {
                epoch: resumed.epoch,
            });
            (
                resumed.epoch + 1,
                resumed.step,
                resumed.history,
                resumed.best,
            )
        }
        None => (1, 0, Vec::new(), None),
    };
    for number in first..=schedule.epochs {
        if stalled(&history, best.as_ref(), schedule.patience) {
            break;
        }
        let (record, outcomes) = epoch.train(number, &mut step, optimiser, progress)?;
        progress(Progress::Epoch(&record));
        let improved = best
            .as_ref()
            .is_none_or(|b: &BestEpoch<_, _>| epoch.improves_on(&record, &b.record));
        if improved {
            best = Some(BestEpoch {
                record: record.clone(),
                tensors: epoch.snapshot()?,
                outcomes,
            });
        }
        history.push(record);
        if let Some(checkpoint) = &checkpoint {
            checkpoint.save(
                varmap,
                optimiser,
                number,
                step,
                &history,
                best.as_ref(),
                improved,
            )?;
        }
    }
    if let Some(checkpoint) = &checkpoint {
        checkpoint.clear();
    }
    Ok(Epochs { history, best })
}

/// Whether `patience` epochs have passed since the best one.
fn stalled<R: EpochFigures, X>(
    history: &[R],
    best: Option<&BestEpoch<R, X>>,
    patience: Option<usize>,
) -> bool {
    let Some(patience) = patience else {
        return false;
    };
    let last = history.last().map_or(0, |r| r.epoch());
    let best_epoch = best.map_or(last, |b| b.record.epoch());
    last > 0 && last - best_epoch >= patience
}
