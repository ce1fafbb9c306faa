//! Identifiers and time.
//!
//! Users are UUIDs (from the caller's token). Everything the engine creates
//! gets a `u64` from one counter in the state, so ids are deterministic: the
//! same commands always produce the same ids, which recovery relies on.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user: buyer, seller, merchant or CS agent. Keyed by the token's subject.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

// The same order as the UUID's bytes, compared as one big-endian integer:
// user ids key most of the engine's maps, and a byte-by-byte comparison
// was the largest single cost of the command mix.
impl Ord for UserId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for UserId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Short form keeps test failures readable.
        let s = self.0.simple().to_string();
        write!(f, "user:{}", &s[..8])
    }
}

macro_rules! u64_id {
    ($($name:ident => $prefix:literal),* $(,)?) => {$(
        #[doc = concat!("Engine-assigned id, shown as `", $prefix, "-N`.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}

u64_id! {
    ListingId => "L",
    TradeId => "T",
    BuyOrderId => "B",
    MethodId => "M",
    EvidenceId => "E",
    AnomalyId => "A",
    MistakeId => "R",
}

/// Milliseconds in a second, for readable durations.
pub const MS_PER_SEC: i64 = 1_000;
/// Milliseconds in a minute.
pub const MS_PER_MIN: i64 = 60 * MS_PER_SEC;
/// Milliseconds in an hour.
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MIN;
/// Milliseconds in a (UTC) day.
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// A point in time: milliseconds since the Unix epoch, UTC.
///
/// The engine never reads a clock; the caller passes `now` with each command.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This time plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn ms_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The UTC day number (days since the epoch) this time falls in.
    pub fn utc_day(self) -> i64 {
        self.0.div_euclid(MS_PER_DAY)
    }

    /// The first instant of the next UTC day.
    pub fn next_utc_midnight(self) -> Self {
        Self((self.utc_day() + 1) * MS_PER_DAY)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}ms", self.0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC (`2026-11-25T18:30:00.000Z`), for messages people read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Days to civil date (Howard Hinnant's algorithm), all in integers.
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let (h, m, s, ms) = (
            ms_of_day / MS_PER_HOUR,
            ms_of_day / MS_PER_MIN % 60,
            ms_of_day / MS_PER_SEC % 60,
            ms_of_day % 1000,
        );
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_and_midnight() {
        let t = Timestamp(3 * MS_PER_DAY + 5);
        assert_eq!(t.utc_day(), 3);
        assert_eq!(t.next_utc_midnight(), Timestamp(4 * MS_PER_DAY));
        assert_eq!(Timestamp(-1).utc_day(), -1);
        assert_eq!(TradeId(7).to_string(), "T-7");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_764_095_400_123).to_string(),
            "2025-11-25T18:30:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    proptest::proptest! {
        #[test]
        fn user_order_is_uuid_order(a: [u8; 16], b: [u8; 16]) {
            let (x, y) = (Uuid::from_bytes(a), Uuid::from_bytes(b));
            proptest::prop_assert_eq!(UserId(x).cmp(&UserId(y)), x.cmp(&y));
        }
    }
}

/// A duration in the largest whole units that state it exactly: `30m`,
/// `1h30m`, `3s`, `1500ms`, as the server's flags write them.
pub fn human_duration(ms: i64) -> String {
    if ms <= 0 {
        return format!("{ms}ms");
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod duration_tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_the_flags_write_them() {
        assert_eq!(human_duration(30 * 60_000), "30m");
        assert_eq!(human_duration(3_000), "3s");
        assert_eq!(human_duration(90 * 60_000), "1h30m");
        assert_eq!(human_duration(86_400_000 + 1_000), "1d1s");
        assert_eq!(human_duration(1_500), "1500ms");
    }
}
