//! Turns at argon2 (SPEC §6, §18): fund-password hashing and checking run
//! on blocking threads, tens of milliseconds and 19 MiB each at the default
//! cost. Unbounded, a stream of requests (cancelled ones too: a started run
//! finishes) would grow tokio's blocking pool to hundreds of threads and
//! gigabytes, and every release would wait behind them. So:
//!
//! - at most one run per core at once (more only queue for the cores while
//!   holding their memory);
//! - at most [`WAITING_MAX`] runs admitted, running or waiting; beyond,
//!   RESOURCE_EXHAUSTED;
//! - at most [`PER_USER_MAX`] of them one user's, so one user cannot fill
//!   the queue; the queue is first come, first served.
//!
//! A turn is held by the blocking job itself, so a request cancelled while
//! argon2 runs still counts until the run ends.

use std::sync::Arc;

use dashmap::DashMap;
use otc_engine::UserId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// argon2 runs admitted at once, running or waiting, at most.
pub const WAITING_MAX: usize = 256;
/// argon2 runs of one user admitted at once, at most.
pub const PER_USER_MAX: usize = 4;

/// Who may run argon2 now (see the module comment).
pub struct Argon2Turns {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    admitted_max: usize,
    per_user: Arc<DashMap<UserId, usize>>,
    per_user_max: usize,
}

/// One admitted run: held until argon2 ends (moved into the blocking job).
pub struct Turn {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
    _user: UserTurn,
}

/// One of a user's admitted runs; given back when dropped.
struct UserTurn {
    user: UserId,
    per_user: Arc<DashMap<UserId, usize>>,
}

impl Drop for UserTurn {
    fn drop(&mut self) {
        self.per_user.remove_if_mut(&self.user, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

impl Argon2Turns {
    /// `running` runs at once, `admitted` running or waiting, `per_user` of
    /// them one user's (each at least 1).
    pub fn new(running: usize, admitted: usize, per_user: usize) -> Self {
        let admitted = admitted.max(1);
        Self {
            running: Arc::new(Semaphore::new(running.max(1))),
            admitted: Arc::new(Semaphore::new(admitted)),
            admitted_max: admitted,
            per_user: Arc::new(DashMap::new()),
            per_user_max: per_user.max(1),
        }
    }

    /// One run per core, [`WAITING_MAX`] admitted, [`PER_USER_MAX`] a user.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores, WAITING_MAX, PER_USER_MAX)
    }

    /// Admits one run for `user` at once or refuses it, then waits for a
    /// core.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when `user` already has their most admitted, or
    /// the queue is full.
    pub async fn turn(&self, user: UserId) -> Result<Turn, Status> {
        let user_turn = {
            let mut n = self.per_user.entry(user).or_insert(0);
            if *n >= self.per_user_max {
                return Err(Status::resource_exhausted(format!(
                    "at most {} fund-password checks of one user run at once; retry shortly \
                     with the same request_id",
                    self.per_user_max
                )));
            }
            *n += 1;
            UserTurn {
                user,
                per_user: Arc::clone(&self.per_user),
            }
        };
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| {
                metrics::counter!("otc_argon2_busy_total").increment(1);
                Status::resource_exhausted(format!(
                    "the server is busy checking fund passwords ({} waiting); retry shortly \
                     with the same request_id",
                    self.admitted_max
                ))
            })?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        Ok(Turn {
            _running: running,
            _admitted: admitted,
            _user: user_turn,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    async fn ready(turns: &Argon2Turns, u: UserId) -> Option<Result<Turn, Status>> {
        tokio::time::timeout(Duration::from_millis(50), turns.turn(u))
            .await
            .ok()
    }

    #[tokio::test]
    async fn runs_are_bounded_per_core_per_user_and_in_all() {
        let turns = Argon2Turns::new(1, 3, 2);
        let (a, b, c) = (user(1), user(2), user(3));
        let first = ready(&turns, a)
            .await
            .expect("a core is free")
            .expect("admitted");
        // The core is taken: the next waits (and, given up, gives its place back).
        assert!(ready(&turns, a).await.is_none());
        let mut waiting_a = Box::pin(turns.turn(a));
        let mut waiting_b = Box::pin(turns.turn(b));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting_a)
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting_b)
                .await
                .is_err()
        );
        // a has 2 admitted: a third is refused at once, naming the bound.
        let e = ready(&turns, a)
            .await
            .expect("at once")
            .err()
            .expect("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("at most 2"), "{e:?}");
        // 3 admitted in all: c is refused at once.
        let e = ready(&turns, c)
            .await
            .expect("at once")
            .err()
            .expect("refused");
        assert!(e.message().contains("3 waiting"), "{e:?}");
        // The core comes free: the first in line runs, then the next.
        drop(first);
        let second = waiting_a.await.expect("a's second runs");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting_b)
                .await
                .is_err()
        );
        drop(second);
        let third = waiting_b.await.expect("b runs");
        drop(third);
        // Everything given back: each may run again, and nothing is left per user.
        for u in [a, b, c] {
            drop(ready(&turns, u).await.expect("free").expect("admitted"));
        }
        assert!(turns.per_user.is_empty());
    }
}
