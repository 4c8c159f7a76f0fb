//! Admission control for model work. Each kind of work (classifying a
//! photo, writing a horoscope) takes a turn from its own pool before it
//! starts; a bounded queue waits for turns, and a request that finds the
//! queue full, or waits past its deadline, is refused at once with 503 and
//! `Retry-After` instead of piling up until the request timeout. Pages,
//! static files, `/healthz` and `/metrics` take no turn, so they never wait
//! behind model work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use starcast_api::QueueStatus;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A pool of turns for one kind of work, and its queue. Cheap to clone:
/// clones share the pool.
#[derive(Clone, Debug)]
pub struct Admission(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    what: &'static str,
    workers: usize,
    turns: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queued: usize,
    max_wait: Duration,
    /// Tickets handed to queued requests, and how many of them have left
    /// the queue (served or gone): a ticket's place is the difference.
    tickets: AtomicU64,
    left: AtomicU64,
    /// A moving average of how long one piece of work takes, in ms.
    work_ms: AtomicU64,
}

/// The right to run one piece of work; the turn is given back when dropped.
#[derive(Debug)]
pub struct Turn {
    _permit: OwnedSemaphorePermit,
}

/// A request admitted to the queue (or straight to a turn), not yet running.
#[derive(Debug)]
pub struct Admitted {
    pool: Arc<Pool>,
    state: Entry,
}

#[derive(Debug)]
enum Entry {
    Turn(OwnedSemaphorePermit),
    /// A place in the queue (its ticket), given back when the wait ends
    /// either way.
    Queued(u64),
    /// Handed on: a turn given to the work.
    Done,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.leave_queue();
    }
}

impl Admission {
    /// `workers` turns at once, at most `max_queued` waiting, none longer
    /// than `max_wait`.
    pub fn new(what: &'static str, workers: usize, max_queued: usize, max_wait: Duration) -> Self {
        Admission(Arc::new(Pool {
            what,
            workers: workers.max(1),
            turns: Arc::new(Semaphore::new(workers.max(1))),
            queued: AtomicUsize::new(0),
            max_queued,
            max_wait,
            tickets: AtomicU64::new(0),
            left: AtomicU64::new(0),
            work_ms: AtomicU64::new(0),
        }))
    }

    /// Takes a turn if one is free, else a place in the queue; refuses at
    /// once when the queue is full.
    pub fn enter(&self) -> Result<Admitted, ApiError> {
        let pool = self.0.clone();
        if let Ok(permit) = pool.turns.clone().try_acquire_owned() {
            return Ok(Admitted {
                pool,
                state: Entry::Turn(permit),
            });
        }
        let ahead = pool.queued.fetch_add(1, Ordering::SeqCst);
        let ticket = pool.tickets.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted {
            pool,
            state: Entry::Queued(ticket),
        };
        if ahead >= admitted.pool.max_queued {
            return Err(admitted.pool.busy());
        }
        Ok(admitted)
    }

    /// [`enter`](Self::enter), then wait for the turn.
    pub async fn turn(&self) -> Result<Turn, ApiError> {
        self.enter()?.turn().await
    }

    /// How many requests wait for a turn now.
    pub fn queued(&self) -> usize {
        self.0.queued.load(Ordering::SeqCst)
    }

    /// Counts one finished piece of work into the wait estimate.
    pub fn record(&self, took: Duration) {
        let ms = took.as_millis().min(u128::from(u32::MAX)) as u64;
        let _ = self
            .0
            .work_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |mean| {
                Some(if mean == 0 { ms } else { (mean * 3 + ms) / 4 })
            });
    }
}

impl Admitted {
    /// Gives the place in the queue back, if it holds one.
    fn leave_queue(&mut self) {
        if matches!(self.state, Entry::Queued(_)) {
            self.state = Entry::Done;
            self.pool.queued.fetch_sub(1, Ordering::SeqCst);
            self.pool.left.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A way to ask where this request stands while it waits; none when
    /// it went straight to a turn.
    pub fn watch(&self) -> Option<QueueWatch> {
        let Entry::Queued(ticket) = self.state else {
            return None;
        };
        Some(QueueWatch {
            pool: self.pool.clone(),
            ticket,
        })
    }

    /// Waits for the turn, refused past the deadline. Dropping the future
    /// (the client left) leaves the queue.
    pub async fn turn(mut self) -> Result<Turn, ApiError> {
        match std::mem::replace(&mut self.state, Entry::Done) {
            Entry::Turn(permit) => return Ok(Turn { _permit: permit }),
            queued => self.state = queued,
        }
        let waited =
            tokio::time::timeout(self.pool.max_wait, self.pool.turns.clone().acquire_owned()).await;
        // By a turn or by the deadline: the ones behind move up now.
        self.leave_queue();
        match waited {
            Ok(Ok(permit)) => Ok(Turn { _permit: permit }),
            _ => Err(self.pool.busy()),
        }
    }
}

/// A queued request's ticket, to report its place while it waits.
#[derive(Debug)]
pub struct QueueWatch {
    pool: Arc<Pool>,
    ticket: u64,
}

impl QueueWatch {
    /// How many wait ahead, and about how long until the turn.
    pub fn status(&self) -> QueueStatus {
        let pool = &self.pool;
        let ahead = self.ticket.saturating_sub(pool.left.load(Ordering::SeqCst)) as usize;
        let per_turn = pool.work_ms.load(Ordering::SeqCst) as f64 / 1000.0;
        QueueStatus {
            ahead,
            wait_s: (ahead + 1) as f64 * per_turn / pool.workers as f64,
        }
    }
}

impl Pool {
    fn busy(&self) -> ApiError {
        ApiError::Busy {
            what: self.what,
            retry_after: self.max_wait.as_secs().max(1),
        }
    }
}

/// Tells blocking work that nobody waits for it any more: the client left
/// (the request's future was dropped, and this guard with it) or the
/// deadline passed. Generation checks it before each token.
#[derive(Clone, Debug)]
pub struct Abandon {
    flag: Arc<AtomicBool>,
    deadline: Instant,
}

/// Sets the flag when the request that owns it is dropped.
#[derive(Debug)]
pub struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Abandon {
    /// A signal for work that must end within `limit`, and the guard that
    /// raises it when dropped.
    pub fn within(limit: Duration) -> (Self, AbandonOnDrop) {
        let flag = Arc::new(AtomicBool::new(false));
        let abandon = Abandon {
            flag: flag.clone(),
            deadline: Instant::now() + limit,
        };
        (abandon, AbandonOnDrop(flag))
    }

    pub fn abandoned(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_a_left_place_is_freed() {
        let admission = Admission::new("test", 1, 1, Duration::from_secs(30));
        let first = admission.turn().await.unwrap();
        let waiting = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.turn().await.map(drop) })
        };
        while admission.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let refused = admission.turn().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        assert!(
            matches!(
                refused,
                ApiError::Busy {
                    retry_after: 30,
                    ..
                }
            ),
            "{refused}"
        );
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(admission.queued(), 0, "the aborted wait left the queue");
        admission.record(Duration::from_secs(4));
        let behind = admission.enter().unwrap();
        let status = behind.watch().unwrap().status();
        assert_eq!(
            status.ahead, 0,
            "the one that left no longer counts: {status:?}"
        );
        assert!((status.wait_s - 4.0).abs() < 1e-9, "{status:?}");
        drop(behind);
        drop(first);
        assert!(admission.turn().await.is_ok());
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_is_refused() {
        let admission = Admission::new("test", 1, 8, Duration::from_millis(50));
        let _held = admission.turn().await.unwrap();
        let err = admission.turn().await.unwrap_err();
        assert!(
            matches!(err, ApiError::Busy { retry_after: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn dropping_the_guard_abandons_the_work() {
        let (abandon, guard) = Abandon::within(Duration::from_secs(60));
        assert!(!abandon.abandoned());
        drop(guard);
        assert!(abandon.abandoned());
        let (late, _guard) = Abandon::within(Duration::ZERO);
        assert!(late.abandoned(), "past its deadline");
    }
}
