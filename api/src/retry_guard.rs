//! Retries of a used request id with other passwords (SPEC §6, §14).
//!
//! A request's passwords count in its fingerprint (see [`crate::pipeline`]),
//! and a used id is answered before argon2 runs: the first reply when the
//! fingerprint matches, ALREADY_EXISTS when it does not. With a user's token
//! and one of their request ids, that pair of answers would tell a right
//! password from a wrong one at the speed of a lookup, past the lockout. So
//! each conflicting retry of a password-bearing request (another password,
//! or any other field: the fingerprint does not tell them apart) counts
//! here, per user: after `attempts` of them (`--fund-password-attempts`),
//! retries of that user's password-bearing requests with a used id are
//! refused for `lock` (`--fund-password-lock`), the matching one included,
//! so neither answer is given. They are refused too while the engine has
//! the user locked for wrong passwords. The two counts are apart: someone
//! who spends both gets twice the attempts in one lock's time. A new request
//! id goes through argon2 and the engine's own lockout as ever. The counts live in memory (a restart forgets them,
//! as it forgets the passwords remembered lately); at most
//! [`USERS_MAX`] users are tracked, then the table starts over.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use otc_engine::UserId;

/// Users tracked at most.
pub const USERS_MAX: usize = 100_000;

#[derive(Clone, Copy)]
struct Mismatches {
    count: u32,
    last: Instant,
}

/// The per-user count of retries with other passwords.
pub struct RetryGuard {
    attempts: u32,
    lock: Duration,
    users: DashMap<UserId, Mismatches>,
}

impl RetryGuard {
    /// Refuses after `attempts` mismatches, for `lock` after the last.
    pub fn new(attempts: u32, lock: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            lock,
            users: DashMap::new(),
        }
    }

    /// How much longer `user`'s retries with used ids are refused at `now`.
    pub fn locked_for(&self, user: UserId, now: Instant) -> Option<Duration> {
        let m = *self.users.get(&user)?;
        let left = self
            .lock
            .checked_sub(now.saturating_duration_since(m.last))?;
        (m.count >= self.attempts && !left.is_zero()).then_some(left)
    }

    /// Counts one retry of `user`'s with a used id and other passwords;
    /// a count older than `lock` starts over.
    pub fn note(&self, user: UserId, now: Instant) {
        if self.users.len() >= USERS_MAX && !self.users.contains_key(&user) {
            // Counts past their lock first; all only if still full.
            self.users
                .retain(|_, m| now.saturating_duration_since(m.last) < self.lock);
            if self.users.len() >= USERS_MAX {
                self.users.clear();
            }
        }
        let mut m = self.users.entry(user).or_insert(Mismatches {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(m.last) >= self.lock {
            m.count = 0;
        }
        m.count = m.count.saturating_add(1);
        m.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_lock_after_the_attempts_and_for_the_lock() {
        let g = RetryGuard::new(2, Duration::from_secs(60));
        let (u, other) = (
            UserId(uuid::Uuid::from_bytes([1; 16])),
            UserId(uuid::Uuid::nil()),
        );
        let t0 = Instant::now();
        assert_eq!(g.locked_for(u, t0), None);
        g.note(u, t0);
        assert_eq!(g.locked_for(u, t0), None, "one of two");
        g.note(u, t0 + Duration::from_secs(1));
        let at = t0 + Duration::from_secs(11);
        assert_eq!(g.locked_for(u, at), Some(Duration::from_secs(50)));
        assert_eq!(g.locked_for(other, at), None, "per user");
        assert_eq!(
            g.locked_for(u, t0 + Duration::from_secs(61)),
            None,
            "lifted"
        );
        // A count older than the lock starts over.
        g.note(u, t0 + Duration::from_secs(200));
        assert_eq!(g.locked_for(u, t0 + Duration::from_secs(200)), None);
    }
}
