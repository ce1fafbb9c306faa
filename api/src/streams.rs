//! Resumable event streams (SPEC §13): what storage holds after the
//! client's last sequence, then live events from the bus, with no gap and
//! no repeat; at most `--stream-subscribers` per user (SPEC §18).

use std::sync::Arc;

use otc_engine::{Event, UserId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::convert;
use crate::core::Core;
use crate::proto as pb;

/// Events read from storage per step while catching up a stream.
const BACKFILL_BATCH: usize = 1_000;

/// Longest a stream's token can keep it open (a token far in the future is
/// held to ten years: a timer past that would overflow).
const MAX_STREAM_SECS: u64 = 10 * 365 * 86_400;

/// Releases a stream slot when the stream ends.
struct Slot {
    core: Arc<Core>,
    user: UserId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut n) = self.core.subscribers.get_mut(&self.user) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A stream of events passing `keep`, from after `after_seq`: first what
/// storage holds, then live ones from the bus, with no gap and no repeat.
///
/// # Errors
/// OUT_OF_RANGE when `after_seq` is older than the retained events;
/// RESOURCE_EXHAUSTED past the per-user subscriber limit.
pub async fn event_stream(
    core: Arc<Core>,
    user: UserId,
    expires: u64,
    after_seq: u64,
    keep: impl Fn(&Event) -> bool + Send + Sync + 'static,
) -> Result<ReceiverStream<Result<pb::Event, Status>>, Status> {
    // Where the catch-up starts: after `after_seq`, or (0) before the
    // oldest event still kept, so a stream asking for everything kept does
    // not take forgotten events for a gap.
    let start = {
        let w = core.read().await?;
        let first = w
            .first_retained_seq()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if after_seq > 0 && after_seq.saturating_add(1) < first {
            let last = w.engine().last_seq();
            // Past the newest, `first` is where the next event will go.
            let kept = if first > last {
                "none is kept now".to_owned()
            } else {
                format!("the oldest kept is {first}")
            };
            return Err(Status::out_of_range(format!(
                "events after {after_seq} are no longer kept ({kept}); re-read your state (GetAccount's as_of_seq) and resume from the newest sequence, now {last}"
            )));
        }
        if after_seq > w.engine().last_seq() {
            return Err(Status::out_of_range(format!(
                "after_seq {after_seq} is ahead of the newest event {}",
                w.engine().last_seq()
            )));
        }
        if after_seq == 0 {
            first.saturating_sub(1)
        } else {
            after_seq
        }
    };
    {
        let mut n = core.subscribers.entry(user).or_insert(0);
        let max = core.subscribers_max;
        if *n >= max {
            return Err(Status::resource_exhausted(format!(
                "at most {max} event streams per user; close one first"
            )));
        }
        *n += 1;
    }
    let slot = Slot {
        core: Arc::clone(&core),
        user,
    };
    let mut live = core.bus.subscribe();
    let mut closing = core.closing.subscribe();
    let (tx, rx) = mpsc::channel(256);
    // The token is valid through its `exp` second; the stream ends after it.
    let left = expires
        .saturating_add(1)
        .saturating_sub(crate::auth::now_secs());
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(left.min(MAX_STREAM_SECS)));
    tokio::spawn(async move {
        let _slot = slot;
        tokio::pin!(expiry);
        let mut last = start;
        // Asked for everything kept: events forgotten between the check
        // above and the first read are not a gap (nothing was sent yet).
        let from_oldest = after_seq == 0;
        if backfill(&core, &mut last, from_oldest, &keep, &tx, &mut closing)
            .await
            .is_err()
        {
            return;
        }
        loop {
            // A client that went away (a closed tab, a reload) frees its slot
            // now, not at the next event it would have been sent; shutdown
            // ends every stream, even one opened after it began.
            let next = tokio::select! {
                next = live.recv() => Some(next),
                _ = tx.closed() => return,
                _ = closing.wait_for(|closing| *closing) => return,
                () = &mut expiry => None,
            };
            let Some(next) = next else {
                // Sent after what is queued, so the client learns why (a
                // client that stopped reading does not hold up shutdown).
                let expired = Status::unauthenticated(
                    "the token expired; sign in again and resume after the last sequence received",
                );
                send_unless_closing(&tx, Err(expired), &mut closing).await;
                return;
            };
            match next {
                Ok(e) if e.seq <= last => continue,
                Ok(e) => {
                    if e.seq > last + 1
                        && backfill(&core, &mut last, false, &keep, &tx, &mut closing)
                            .await
                            .is_err()
                    {
                        return;
                    }
                    if e.seq == last + 1 {
                        last = e.seq;
                        if keep(&e)
                            && !send_unless_closing(&tx, Ok(convert::event_pb(&e)), &mut closing)
                                .await
                        {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if backfill(&core, &mut last, false, &keep, &tx, &mut closing)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

type Tx = mpsc::Sender<Result<pb::Event, Status>>;

/// Sends `item` unless shutdown begins first: a client that stopped reading
/// does not hold up shutdown. False when it was not sent.
async fn send_unless_closing(
    tx: &Tx,
    item: Result<pb::Event, Status>,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = tx.send(item) => sent.is_ok(),
        _ = closing.wait_for(|closing| *closing) => false,
    }
}

/// Sends stored events after `*last` until storage has no more (or
/// shutdown begins).
async fn backfill(
    core: &Core,
    last: &mut u64,
    from_oldest: bool,
    keep: &(impl Fn(&Event) -> bool + Send + Sync),
    tx: &Tx,
    closing: &mut watch::Receiver<bool>,
) -> Result<(), ()> {
    // Only the first batch may start past `last` without a gap.
    let mut oldest_ok = from_oldest;
    loop {
        // A client that went away stops the catch-up here, not at the end of
        // the log: one whose filter passes little would otherwise scan seven
        // days of everyone's events and hold its slot all the while.
        if tx.is_closed() || *closing.borrow() {
            return Err(());
        }
        // The read lock is let go before anything is sent.
        let batch = match core.read().await {
            Ok(w) => w
                .store()
                .events_from(*last + 1, BACKFILL_BATCH)
                .map_err(|e| Status::unavailable(e.to_string())),
            Err(status) => Err(status),
        };
        let batch = match batch {
            Ok(b) => b,
            Err(status) => {
                send_unless_closing(tx, Err(status), closing).await;
                return Err(());
            }
        };
        // Sequences have no gaps, so one here means housekeeping forgot
        // events this stream had not reached (it fell behind near the
        // retention's edge): the client must re-read, not skip them.
        let forgotten = batch.first().filter(|e| e.seq > *last + 1);
        if let (Some(first), true) = (forgotten, oldest_ok) {
            // Everything kept was asked for, and more was forgotten since:
            // what is kept now starts here.
            *last = first.seq - 1;
        } else if let Some(first) = forgotten {
            let gone = Status::out_of_range(format!(
                "events after {} are no longer kept (the oldest kept is {}); re-read your state and resume from the newest sequence",
                *last, first.seq
            ));
            send_unless_closing(tx, Err(gone), closing).await;
            return Err(());
        }
        oldest_ok = false;
        let n = batch.len();
        for e in batch {
            *last = e.seq;
            if keep(&e) && !send_unless_closing(tx, Ok(convert::event_pb(&e)), closing).await {
                return Err(());
            }
        }
        if n < BACKFILL_BATCH {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use otc_storage::WriterOptions;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::core::tests::{deposit, start};

    async fn deposits(core: &Core, n: usize, tag: &str) {
        for i in 0..n {
            let done = core
                .submit(None, deposit(&format!("{tag}-{i}")), None)
                .await;
            assert!(done.is_ok(), "{done:?}");
        }
    }

    /// A store whose first events housekeeping forgot, and one more
    /// deposit after: the store's dir, the core and its writer thread, and
    /// the first sequence still kept.
    async fn forgotten_then_one_more() -> (
        tempfile::TempDir,
        Arc<Core>,
        std::thread::JoinHandle<()>,
        u64,
    ) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (core, thread) = start(dir.path(), WriterOptions::default());
        deposits(&core, 2, "old").await;
        let first_kept = {
            let w = core.read().await.unwrap_or_else(|e| panic!("{e}"));
            let far = otc_engine::Timestamp(i64::MAX / 2);
            let forgotten = w.store().prune_events(far, 1_000);
            assert!(matches!(forgotten, Ok(n) if n > 0), "{forgotten:?}");
            w.engine().last_seq() + 1
        };
        deposits(&core, 1, "new").await;
        (dir, core, thread, first_kept)
    }

    /// A catch-up whose client has gone reads nothing more: it does not
    /// scan the rest of the log holding the user's stream slot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_catch_up_stops_when_its_client_has_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (core, thread) = start(dir.path(), WriterOptions::default());
        deposits(&core, 3, "d").await;
        let (tx, rx) = mpsc::channel(4);
        drop(rx);
        let (_closing_tx, mut closing) = watch::channel(false);
        let mut last = 0;
        let done = backfill(
            &core,
            &mut last,
            false,
            &|_: &Event| false,
            &tx,
            &mut closing,
        )
        .await;
        assert!(done.is_err(), "the catch-up ends");
        assert_eq!(last, 0, "and read no event for a client that left");
        drop(core);
        let _ = thread.join();
    }

    /// Events forgotten under a catch-up that had not reached them end the
    /// stream with OUT_OF_RANGE (SPEC §13), not a silent gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_catch_up_past_forgotten_events_is_out_of_range() {
        let (_dir, core, thread, _) = forgotten_then_one_more().await;
        let (tx, mut rx) = mpsc::channel(16);
        let (_closing_tx, mut closing) = watch::channel(false);
        // The client had seen the first event.
        let mut last = 1;
        let done = backfill(
            &core,
            &mut last,
            false,
            &|_: &Event| true,
            &tx,
            &mut closing,
        )
        .await;
        assert!(done.is_err(), "the stream ends");
        match rx.recv().await {
            Some(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
                assert!(status.message().contains("no longer kept"), "{status:?}");
            }
            other => panic!("OUT_OF_RANGE first, not {other:?}"),
        }
        drop(core);
        let _ = thread.join();
    }

    /// A stream asking for everything kept whose start was fixed just
    /// before housekeeping forgot more: its first read starts at what is
    /// kept then, not OUT_OF_RANGE (nothing had been sent).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_kept_tolerates_events_forgotten_before_its_first_read() {
        // The stream's start, as computed when it opened: nothing forgotten.
        let mut last = 0;
        let (_dir, core, thread, first_kept) = forgotten_then_one_more().await;
        let (tx, mut rx) = mpsc::channel(16);
        let (_closing_tx, mut closing) = watch::channel(false);
        let done = backfill(&core, &mut last, true, &|_: &Event| true, &tx, &mut closing).await;
        assert!(done.is_ok(), "caught up");
        match rx.recv().await {
            Some(Ok(e)) => assert_eq!(e.seq, first_kept, "the oldest kept"),
            other => panic!("the oldest kept event, not {other:?}"),
        }
        drop(core);
        let _ = thread.join();
    }

    /// A stream asking for everything still kept (after_seq 0) starts at
    /// the oldest kept event, however many were forgotten before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_kept_starts_at_the_oldest_kept_event() {
        let (_dir, core, thread, first_kept) = forgotten_then_one_more().await;
        let user = otc_storage::workload::workload_user(1);
        let mut stream = event_stream(Arc::clone(&core), user, u64::MAX, 0, |_| true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
        match next {
            Ok(Some(Ok(e))) => assert_eq!(e.seq, first_kept, "the oldest kept"),
            other => panic!("the oldest kept event, not {other:?}"),
        }
        drop(stream);
        drop(core);
        let _ = thread.join();
    }
}
