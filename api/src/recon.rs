//! Reconciliation in the shell (SPEC §20): a bill streamed in chunks to a
//! temporary file (bounded by `--bill-max`), parsed streaming by
//! `otc_gateway::bill`, matched line by line by the engine's `Matcher`, and
//! recorded through the pipeline (request id, durable, first reply on a
//! retry). A malformed bill is refused whole, naming the line and column,
//! and records nothing. Statements are read from the engine.

use std::io::{BufReader, Write};

use chrono::{NaiveDate, TimeZone};
use otc_engine::recon::{BillLine, BillStatus, DayWindow};
use otc_engine::{Command, Timestamp, UserId};
use otc_gateway::bill::{BillReader, BillRow, RowStatus, format_of};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::{Response, Status, Streaming};

use crate::channels::Channels;
use crate::convert as cv;
use crate::core::Core;
use crate::pipeline::{Prepared, mutate};
use crate::proto as pb;

/// Reconciliation settings.
#[derive(Debug, Clone, Copy)]
pub struct ReconConfig {
    /// Largest bill accepted, in bytes.
    pub bill_max: u64,
    /// Payments this close to midnight wait for the next day's bill.
    pub window_ms: i64,
}

/// A bill's day, written exactly as YYYY-MM-DD (a bill is recorded under
/// it, so one day has one spelling).
fn bill_day(date: &str) -> Result<NaiveDate, Status> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == date)
        .ok_or_else(|| Status::invalid_argument("date must be a day as YYYY-MM-DD"))
}

/// A bill's day in the channel's time zone, as engine time.
///
/// # Errors
/// INVALID_ARGUMENT naming `date`.
pub fn day_window(tz: chrono_tz::Tz, date: &str, window_ms: i64) -> Result<DayWindow, Status> {
    let day = bill_day(date)?;
    let bad = || Status::invalid_argument("date must be a day as YYYY-MM-DD");
    // A day begins at its first local minute that exists: where a clock
    // change skips midnight (America/Santiago, say), at 01:00.
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0)?;
        (0..24 * 60)
            .find_map(|m| {
                let t = midnight.checked_add_signed(chrono::Duration::minutes(m))?;
                tz.from_local_datetime(&t).earliest()
            })
            .map(|t| Timestamp(t.timestamp_millis()))
    };
    let next = day.succ_opt().ok_or_else(bad)?;
    Ok(DayWindow {
        start: start(day).ok_or_else(bad)?,
        end: start(next).ok_or_else(bad)?,
        window_ms,
    })
}

/// A parsed bill row as the engine's matcher takes it.
pub fn bill_line(row: BillRow) -> BillLine {
    BillLine {
        at: Timestamp(row.at.timestamp_millis()),
        txn_id: row.txn_id,
        reference: row.reference,
        amount: row.amount,
        status: match row.status {
            RowStatus::Paid => BillStatus::Paid,
            RowStatus::Refund => BillStatus::Refund,
            RowStatus::Closed => BillStatus::Closed,
        },
    }
}

/// A temporary file removed when dropped.
struct TempBill(std::path::PathBuf);

impl Drop for TempBill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Imports a bill (see the module docs).
///
/// # Errors
/// INVALID_ARGUMENT for a missing or bad first chunk, an unknown channel,
/// a bill over the limit or a malformed line; what the pipeline answers.
pub async fn import_bill(
    core: &Core,
    channels: &Channels,
    caller: UserId,
    config: ReconConfig,
    mut chunks: Streaming<pb::BillChunk>,
) -> Result<Response<pb::ReconReport>, Status> {
    let first = next_chunk(&mut chunks)
        .await?
        .ok_or_else(|| Status::invalid_argument("the bill is empty: send its chunks"))?;
    // The request id first: a bad one is refused before the bill is read.
    let rid = cv::request_id(&first.request_id)?;
    let channel = channels.get(&first.channel).ok_or_else(|| {
        Status::invalid_argument(format!(
            "channel: no payment channel named {} is declared",
            otc_engine::shown(&first.channel)
        ))
    })?;
    let day = day_window(channel.time_zone(), &first.date, config.window_ms)?;
    // A day that has not begun where the gateway keeps its books has no
    // bill; one taken as such would call that day's payments missing there.
    let now = crate::core::clock_now();
    if day.start > now {
        let today = chrono::DateTime::from_timestamp_millis(now.0)
            .map(|t| {
                t.with_timezone(&channel.time_zone())
                    .date_naive()
                    .to_string()
            })
            .unwrap_or_default();
        return Err(Status::invalid_argument(format!(
            "date {} is after today ({today} in {}): a bill covers a day that has begun",
            first.date,
            channel.time_zone()
        )));
    }
    // The chunks go to a temporary file, so memory does not grow with the
    // bill; its digest, taken on the way, completes the fingerprint.
    let (temp, digest) = stage(&first, &mut chunks, config.bill_max).await?;
    // The request's fingerprint: channel, date and the file's digest.
    let key = pb::BillChunk {
        request_id: String::new(),
        channel: first.channel.clone(),
        date: first.date.clone(),
        data: digest.as_bytes().to_vec(),
    };
    // The pipeline looks the id up before `prepare` runs: a retry gets its
    // first result without the bill being parsed or matched again against
    // a state that has moved on since.
    mutate(core, caller, "ImportBill", &rid, &key, async {
        let matcher = core
            .read()
            .await?
            .engine()
            .bill_matcher(channel.name(), day);
        let (format, max, account) = (
            format_of(channel.provider()),
            config.bill_max,
            channel.bill_account(),
        );
        let path = temp.0.clone();
        let report = tokio::task::spawn_blocking(move || {
            let input = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let mut reader =
                BillReader::new(format, BufReader::new(input), max).of_account(account);
            let mut matcher = matcher;
            // Refunds and late completions may fall outside the day; a bill
            // with no line on it (the day itself, not the window matched
            // around it) is another day's.
            let (mut lines, mut on_day) = (0u64, 0u64);
            while let Some(row) = reader.next_row().map_err(|e| e.to_string())? {
                let at = Timestamp(row.at.timestamp_millis());
                lines += 1;
                on_day += u64::from(at >= day.start && at < day.end);
                matcher.line(&bill_line(row));
            }
            if lines > 0 && on_day == 0 {
                return Err(format!(
                    "none of its {lines} lines is on the bill's day; is it the bill of another day?"
                ));
            }
            Ok::<_, String>(matcher.finish())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|why| Status::invalid_argument(format!("the bill is refused whole: {why}")))?;
        drop(temp);
        if report.overflow {
            return Err(Status::invalid_argument(format!(
                "data: the bill disagrees on more than {} payments; is it {}'s bill of {}?",
                otc_engine::recon::MISTAKES_PER_BILL_MAX,
                first.channel,
                first.date
            )));
        }
        Ok(Prepared::from(Command::RecordBill {
            channel: first.channel.clone(),
            day: first.date.clone(),
            digest,
            report,
        }))
    })
    .await
}

/// The longest wait for a bill's next chunk: a streamed bill has no overall
/// deadline (a large one on a slow link takes its time), but a stalled one
/// does not hold its call and temporary file forever.
pub const CHUNK_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The slowest a bill may arrive on average (past its first
/// [`CHUNK_WITHIN`]): a sender dribbling a byte per chunk does not hold the
/// call for days. 256 MiB may take 68 minutes.
pub const BILL_BYTES_PER_SEC_MIN: u64 = 64 * 1024;

/// The next chunk, within [`CHUNK_WITHIN`].
async fn next_chunk(
    chunks: &mut Streaming<pb::BillChunk>,
) -> Result<Option<pb::BillChunk>, Status> {
    match tokio::time::timeout(CHUNK_WITHIN, chunks.next()).await {
        Ok(next) => next.transpose(),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no chunk of the bill arrived for {}s; send it again with the same request_id",
            CHUNK_WITHIN.as_secs()
        ))),
    }
}

/// Writes the bill's chunks, `first` and the rest of `chunks`, to an
/// owner-only temporary file, at most `bill_max` bytes; returns it with the
/// SHA-256 of its bytes in hex (what the bill reader's digest is once it
/// has read the whole file).
async fn stage(
    first: &pb::BillChunk,
    chunks: &mut Streaming<pb::BillChunk>,
    bill_max: u64,
) -> Result<(TempBill, String), Status> {
    let path = std::env::temp_dir().join(format!("otc-bill-{}", uuid::Uuid::new_v4().simple()));
    let temp = TempBill(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp.0)
        .map_err(|e| Status::internal(format!("cannot stage the bill: {e}")))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let started = std::time::Instant::now();
    let mut chunk = Some(first.clone());
    while let Some(c) = chunk {
        size += c.data.len() as u64;
        let allowed = CHUNK_WITHIN.as_secs() + size / BILL_BYTES_PER_SEC_MIN;
        if started.elapsed().as_secs() > allowed {
            return Err(Status::deadline_exceeded(format!(
                "the bill arrives slower than {} KiB/s; send it again with the same request_id",
                BILL_BYTES_PER_SEC_MIN / 1024
            )));
        }
        if size > bill_max {
            return Err(Status::invalid_argument(format!(
                "the bill is larger than the configured limit of {bill_max} bytes (--bill-max)"
            )));
        }
        hasher.update(&c.data);
        file.write_all(&c.data)
            .map_err(|e| Status::internal(format!("cannot stage the bill: {e}")))?;
        chunk = next_chunk(chunks).await?;
    }
    file.flush()
        .map_err(|e| Status::internal(format!("cannot stage the bill: {e}")))?;
    let digest = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((temp, digest))
}

/// The statement of `asset` for a UTC day.
///
/// # Errors
/// INVALID_ARGUMENT naming `asset` or `date`.
pub async fn statement(core: &Core, r: &pb::GetStatementRequest) -> Result<pb::Statement, Status> {
    let asset = cv::asset("asset", &r.asset)?;
    let day = otc_engine::chrono_day(&r.date)
        .ok_or_else(|| Status::invalid_argument("date must be a day as YYYY-MM-DD"))?;
    let w = core.read().await?;
    let e = w.engine();
    if !e.config().assets.contains_key(&asset) {
        return Err(Status::invalid_argument(format!(
            "asset {asset} is not traded here"
        )));
    }
    // Today's statement is the day so far; a later day has no statement yet.
    let today = crate::core::clock_now().max(e.state().clock).utc_day();
    if day > today {
        let (y, m, d) = otc_engine::civil(today);
        return Err(Status::invalid_argument(format!(
            "date {} is after today ({y:04}-{m:02}-{d:02} UTC): a statement covers a day that has begun",
            r.date
        )));
    }
    let s = e.statement(asset, day);
    Ok(pb::Statement {
        asset: asset.to_string(),
        date: r.date.clone(),
        opening: s.opening.to_string(),
        deposits: s.flows.deposits.to_string(),
        withdrawals: s.flows.withdrawals.to_string(),
        released_to_buyers: s.flows.released.to_string(),
        returned_to_sellers: s.flows.returned.to_string(),
        closing: s.closing.to_string(),
        balances: s.balances.to_string(),
        balanced: s.balanced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bill's day has one spelling: it is recorded under it.
    #[test]
    fn a_bills_day_is_written_one_way() {
        assert!(day_window(chrono_tz::Asia::Shanghai, "2024-03-01", 0).is_ok());
        // Santiago's clocks skip from 00:00 to 01:00 on 2024-09-08: that day
        // begins at 01:00 (-03), where the day before ends.
        let santiago = chrono_tz::America::Santiago;
        let skipped = NaiveDate::from_ymd_opt(2024, 9, 8).and_then(|d| d.and_hms_opt(0, 0, 0));
        assert!(
            skipped.is_some_and(|t| santiago.from_local_datetime(&t).earliest().is_none()),
            "the fixture's midnight is skipped"
        );
        let sunday = day_window(santiago, "2024-09-08", 0).expect("a day without a midnight");
        let saturday = day_window(santiago, "2024-09-07", 0).expect("the day before it");
        let one_am = chrono::DateTime::parse_from_rfc3339("2024-09-08T04:00:00Z").expect("time");
        assert_eq!(sunday.start, Timestamp(one_am.timestamp_millis()));
        assert_eq!(saturday.end, sunday.start);
        for bad in ["2024-3-1", "2024-03-01 ", "20240301", "2024-02-30", ""] {
            let e = day_window(chrono_tz::Asia::Shanghai, bad, 0).expect_err(bad);
            assert!(e.message().starts_with("date must be"), "{bad}: {e:?}");
        }
    }
}
