//! Fund passwords in the shell (SPEC §6): the argon2id cost, and the password
//! each user's hash matched lately, remembered in memory so that a merchant
//! who releases trade after trade pays argon2 about once per `remember`, not
//! on every release (at the default cost, 19 MiB and two passes, argon2 takes
//! tens of milliseconds of a core per check).
//!
//! What is remembered, per user, is an HMAC-SHA256 tag of (user, hash version,
//! password) under a key drawn from the OS when `otcd` starts. The key and the
//! tags live only in this process's memory: never in the data dir, a log, an
//! event or a reply, and gone at a restart (the stored key zeroed when
//! dropped). A tag is kept only for a password argon2 matched on a command the
//! engine then applied: until then it travels with that one command, as a
//! [`Matched`] ticket (a right guess on a command refused for another reason
//! counts nothing, so remembering it would let the next reply's time tell).
//! While a user's tag is fresh, every password that user types is judged
//! against it, right or wrong, with no argon2: the verdict takes the same time
//! either way, so the time of a reply never tells a right guess from a wrong
//! one (a timing difference would be a guessing oracle past the lock). A tag
//! is forgotten when the user's password is set again (before that change is
//! answered; a ticket applied in the same group before the change is not
//! kept), after `remember` (15 minutes by default; `off` remembers nothing),
//! and all at once when the table is full. The engine decides each verdict
//! exactly as an argon2 one: the lock, the current hash version, a wrong one
//! counted.
//!
//! A request's fingerprint (see [`crate::pipeline`]) holds its passwords
//! only as [`FundPasswords::print_tag`]: an HMAC-SHA256 under a key derived
//! from the token secret, so it is the same after a restart (a retry within
//! the request-id retention still matches) and, unlike a plain hash of a
//! six-digit password, tells nothing to someone holding only the data dir.
//!
//! What this gives up: someone who can read `otcd`'s memory could test
//! guesses against a tag at HMAC speed rather than argon2 speed. Such a
//! reader also sees every password as it arrives in a request; argon2's
//! slowness protects the stored hashes (the data dir, backups), and
//! nothing of this reaches them. And a reply's time tells whether the
//! user carried out a protected action in the last `remember`: activity,
//! which a holder of the user's token can read from their trades anyway.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use otc_engine::UserId;
use otc_engine::command::FundPasswordProof;
use sha2::Sha256;
use tonic::Status;
use zeroize::Zeroizing;

use crate::argon2_turns::{Argon2Turns, Turn};

/// argon2id cost settings (SPEC §6: the hash is slow on purpose).
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

/// Users whose password is remembered at most (then the table starts
/// over).
const REMEMBERED_MAX: usize = 100_000;

/// One user's last verified password.
#[derive(Clone, Copy)]
struct Remembered {
    /// The hash version it matched.
    version: u32,
    /// HMAC-SHA256(key, user ‖ version ‖ password).
    tag: [u8; 32],
    /// When argon2 verified it.
    at: Instant,
}

/// A password argon2 matched, waiting for the engine to apply the one
/// command whose verdict it gave (see [`FundPasswords::pend`]).
pub struct Matched {
    user: UserId,
    remembered: Remembered,
}

impl Matched {
    /// Whose password it is.
    pub fn user(&self) -> UserId {
        self.user
    }
}

/// How fund passwords are checked: argon2id at `cost`, and passwords
/// verified lately remembered for `remember` (see the module comment).
pub struct FundPasswords {
    cost: HashCost,
    remember: Duration,
    /// On the heap, so moving this value leaves no copy behind, and zeroed
    /// when dropped. (The HMAC state built from it for each tag, its
    /// padded key blocks included, is not zeroed: neither `hmac` nor `sha2`
    /// does that.)
    key: Box<Zeroizing<[u8; 32]>>,
    /// The key of [`FundPasswords::print_tag`], derived from the token
    /// secret (durable, never in the data dir); zeroed when dropped.
    print_key: Box<Zeroizing<[u8; 32]>>,
    verified: DashMap<UserId, Remembered>,
    /// Retries of used request ids with other passwords.
    pub retries: crate::retry_guard::RetryGuard,
    /// Who may run argon2 now.
    turns: Argon2Turns,
}

impl FundPasswords {
    /// Checks at `cost`, remembering a verified password for `remember`
    /// (zero: never); requests' passwords are fingerprinted under a key
    /// derived from `token_secret`.
    ///
    /// # Errors
    /// The OS gave no random key.
    pub fn new(cost: HashCost, remember: Duration, token_secret: &[u8]) -> Result<Self, String> {
        let mut key = Box::new(Zeroizing::new([0u8; 32]));
        getrandom::fill(&mut key[..]).map_err(|e| format!("no random key from the OS: {e}"))?;
        let mut print_key = Box::new(Zeroizing::new([0u8; 32]));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"otc: the passwords in a request's fingerprint, v1");
        print_key.copy_from_slice(&mac.finalize().into_bytes());
        Ok(Self {
            cost,
            remember,
            key,
            print_key,
            verified: DashMap::new(),
            retries: crate::retry_guard::RetryGuard::new(5, Duration::from_secs(15 * 60)),
            turns: Argon2Turns::for_this_machine(),
        })
    }

    /// Counts retries with other passwords against `attempts`, refusing
    /// them for `lock` (see [`crate::retry_guard`]).
    #[must_use]
    pub fn with_retry_limit(mut self, attempts: u32, lock: Duration) -> Self {
        self.retries = crate::retry_guard::RetryGuard::new(attempts, lock);
        self
    }

    /// A turn at argon2 for `user`: hold it until the run ends.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED past the bounds of [`crate::argon2_turns`].
    pub async fn turn(&self, user: UserId) -> Result<Turn, Status> {
        self.turns.turn(user).await
    }

    /// The argon2id instance at the configured cost.
    ///
    /// # Errors
    /// INTERNAL for parameters argon2 refuses.
    pub fn argon2(&self) -> Result<Argon2<'static>, Status> {
        let params = Params::new(self.cost.memory_kib, self.cost.iterations, 1, None)
            .map_err(|e| Status::internal(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    fn mac(&self, user: UserId, version: u32, password: &str) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(user.0.as_bytes());
        mac.update(&version.to_be_bytes());
        mac.update(password.as_bytes());
        mac
    }

    /// What a request's `passwords` add to its fingerprint: HMAC-SHA256 of
    /// `method` and each password, length-prefixed, under the key derived
    /// from the token secret. The same passwords give the same tag after a
    /// restart; another token secret gives another (a retry then gets
    /// ALREADY_EXISTS, as after any change of its fields).
    pub fn print_tag(&self, method: &str, passwords: &[&str]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.print_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(method.as_bytes());
        mac.update(&[0]);
        for p in passwords {
            // Lengths keep ("ab", "c") apart from ("a", "bc").
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The verdict on `password` for `user` from the password their hash
    /// matched lately, if one is remembered and still fresh at `now`:
    /// matched if it is the same, wrong if not (a hash matches one
    /// password), either way about the version it matched.
    pub fn recall(&self, user: UserId, password: &str, now: Instant) -> Option<FundPasswordProof> {
        let Remembered { version, tag, at } = *self.verified.get(&user)?;
        if now.saturating_duration_since(at) >= self.remember {
            self.verified.remove_if(&user, |_, r| r.at == at);
            return None;
        }
        // Compared in constant time.
        let same = self.mac(user, version, password).verify_slice(&tag).is_ok();
        Some(if same {
            FundPasswordProof::matched(version)
        } else {
            FundPasswordProof::wrong(version)
        })
    }

    /// A ticket for `password`, which argon2 matched against `user`'s hash
    /// of `version`: it goes with the command carrying that verdict, and
    /// [`FundPasswords::confirm`] remembers it once the engine applied that
    /// command. `None` when nothing is remembered (`off`).
    pub fn pend(&self, user: UserId, version: u32, password: &str, at: Instant) -> Option<Matched> {
        if self.remember.is_zero() {
            return None;
        }
        let tag: [u8; 32] = self
            .mac(user, version, password)
            .finalize()
            .into_bytes()
            .into();
        Some(Matched {
            user,
            remembered: Remembered { version, tag, at },
        })
    }

    /// The engine applied the command `matched` went with, so its verdict
    /// was about the current hash: the password is remembered, unless the
    /// ticket is stale at `now`. (The caller skips users whose password the
    /// same group set after that command: see `Core`'s answer step.)
    pub fn confirm(&self, matched: Matched, now: Instant) {
        let Matched { user, remembered } = matched;
        if now.saturating_duration_since(remembered.at) >= self.remember {
            return;
        }
        if self.verified.len() >= REMEMBERED_MAX {
            self.verified.clear();
        }
        self.verified.insert(user, remembered);
    }

    /// Forgets `user`'s password: it was set again.
    pub fn forget(&self, user: UserId) {
        self.verified.remove(&user);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// At the cheapest cost, remembering for `remember`.
    pub(crate) fn passwords(remember: Duration) -> FundPasswords {
        let cost = HashCost {
            memory_kib: 64,
            iterations: 1,
        };
        FundPasswords::new(cost, remember, b"secret").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn print_tags_survive_a_restart_and_tell_passwords_apart() {
        let cost = HashCost {
            memory_kib: 64,
            iterations: 1,
        };
        let make = |secret: &[u8]| {
            FundPasswords::new(cost, Duration::ZERO, secret).unwrap_or_else(|e| panic!("{e}"))
        };
        let (first, restarted) = (make(b"token secret"), make(b"token secret"));
        let tag = first.print_tag("SetFundPassword", &["new-pass", ""]);
        assert_eq!(
            tag,
            restarted.print_tag("SetFundPassword", &["new-pass", ""])
        );
        assert_ne!(tag, first.print_tag("SetFundPassword", &["other-pass", ""]));
        assert_ne!(tag, first.print_tag("SetFundPassword", &["new-pas", "s"]));
        assert_ne!(tag, first.print_tag("Release", &["new-pass", ""]));
        assert_ne!(
            tag,
            make(b"another secret").print_tag("SetFundPassword", &["new-pass", ""])
        );
    }

    fn user(n: u8) -> UserId {
        UserId(uuid::Uuid::from_bytes([n; 16]))
    }

    /// Matched by argon2, then applied by the engine.
    fn learn(p: &FundPasswords, who: UserId, version: u32, password: &str, at: Instant) {
        if let Some(matched) = p.pend(who, version, password, at) {
            p.confirm(matched, at);
        }
    }

    fn matched(version: u32) -> Option<FundPasswordProof> {
        Some(FundPasswordProof::matched(version))
    }

    fn wrong(version: u32) -> Option<FundPasswordProof> {
        Some(FundPasswordProof::wrong(version))
    }

    #[test]
    fn a_remembered_password_judges_every_password_of_its_user() {
        let p = passwords(Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(p.recall(user(1), "secret-1", now), None, "nothing yet");
        learn(&p, user(1), 3, "secret-1", now);
        learn(&p, user(2), 5, "secret-2", now);
        assert_eq!(p.recall(user(1), "secret-1", now), matched(3));
        assert_eq!(
            p.recall(user(1), "secret-2", now),
            wrong(3),
            "another password"
        );
        assert_eq!(
            p.recall(user(1), "secret-1 ", now),
            wrong(3),
            "one byte more"
        );
        assert_eq!(
            p.recall(user(2), "secret-1", now),
            wrong(5),
            "another user's"
        );
        assert_eq!(p.recall(user(2), "secret-2", now), matched(5));
        assert_eq!(
            p.recall(user(3), "secret-1", now),
            None,
            "none for this user"
        );
    }

    #[test]
    fn a_match_is_remembered_only_through_its_own_ticket() {
        let p = passwords(Duration::from_secs(60));
        let now = Instant::now();
        let ticket = p.pend(user(1), 1, "secret-1", now);
        assert_eq!(p.recall(user(1), "secret-1", now), None, "a ticket only");
        // A second ticket of the same user, never confirmed (its command
        // was refused), changes nothing.
        let _refused = p.pend(user(1), 1, "secret-1", now);
        assert_eq!(p.recall(user(1), "secret-1", now), None);
        p.confirm(ticket.unwrap_or_else(|| panic!("remembering is on")), now);
        assert_eq!(p.recall(user(1), "secret-1", now), matched(1));
        let late = p.pend(user(3), 1, "secret-3", now);
        p.confirm(
            late.unwrap_or_else(|| panic!("on")),
            now + Duration::from_secs(60),
        );
        assert_eq!(
            p.recall(user(3), "secret-3", now),
            None,
            "confirmed too late"
        );
    }

    #[test]
    fn a_remembered_password_expires() {
        let p = passwords(Duration::from_secs(60));
        let then = Instant::now();
        learn(&p, user(1), 1, "secret-1", then);
        let later = then + Duration::from_secs(59);
        assert_eq!(p.recall(user(1), "secret-1", later), matched(1));
        let expired = then + Duration::from_secs(60);
        assert_eq!(p.recall(user(1), "secret-1", expired), None);
        assert_eq!(p.recall(user(1), "secret-1", then), None, "and is gone");
    }

    #[test]
    fn remembering_for_zero_remembers_nothing() {
        let p = passwords(Duration::ZERO);
        let now = Instant::now();
        assert!(p.pend(user(1), 1, "secret-1", now).is_none());
        learn(&p, user(1), 1, "secret-1", now);
        assert_eq!(p.recall(user(1), "secret-1", now), None);
    }

    #[test]
    fn a_set_password_is_forgotten() {
        let p = passwords(Duration::from_secs(60));
        let now = Instant::now();
        learn(&p, user(1), 1, "old-secret", now);
        learn(&p, user(2), 1, "other-secret", now);
        p.forget(user(1));
        assert_eq!(p.recall(user(1), "old-secret", now), None, "forgotten");
        assert_eq!(
            p.recall(user(2), "other-secret", now),
            matched(1),
            "others kept"
        );
        learn(&p, user(1), 2, "new-secret", now);
        assert_eq!(p.recall(user(1), "new-secret", now), matched(2));
        assert_eq!(p.recall(user(1), "old-secret", now), wrong(2));
    }
}
