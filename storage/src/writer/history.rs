//! History and retention: the final state of records a group ended,
//! the per-user indexes, pruning of request ids and events, and actions on
//! a record only history still holds.

use crate::store::Batch;
use std::collections::BTreeSet;

use otc_engine::buy::BuyOrder;
use otc_engine::listing::Listing;
use otc_engine::trade::Trade;
use otc_engine::{
    BuyOrderId, Changed, Command, EndedRecord, Engine, Event, EventKind, ListingId, Rejection,
    Target, Timestamp, TradeId,
};

use super::Writer;
use crate::codec::{self, kind};
use crate::error::StorageError;
use crate::store::Store;

/// History records of a group, by key: the latest version of each, in pieces.
pub(crate) type History = std::collections::BTreeMap<[u8; 9], Vec<codec::KeyValue>>;

/// The records a group changed (each once), from what the engine reports
/// after each command.
#[derive(Default)]
pub(crate) struct GroupChanges {
    trades: BTreeSet<TradeId>,
    listings: BTreeSet<ListingId>,
    orders: BTreeSet<BuyOrderId>,
}

impl GroupChanges {
    pub(crate) fn add(&mut self, c: &Changed) {
        self.trades.extend(&c.trades);
        self.listings.extend(&c.listings);
        self.orders.extend(&c.orders);
    }
}

/// History's record of an ended trade, listing or buy order, owned.
enum Ended {
    /// A trade.
    Trade(Trade),
    /// A listing.
    Listing(Listing),
    /// A buy order.
    BuyOrder(BuyOrder),
}

impl Ended {
    /// Borrowed, as the engine takes it.
    fn as_ref(&self) -> EndedRecord<'_> {
        match self {
            Ended::Trade(t) => EndedRecord::Trade(t),
            Ended::Listing(l) => EndedRecord::Listing(l),
            Ended::BuyOrder(o) => EndedRecord::BuyOrder(o),
        }
    }
}

/// What a command `engine` answered NOT_FOUND (`refused`) gets: when what
/// it acts on has left the working set but history holds it, the engine's
/// refusal of it as it stood when held (SPEC §10). History is read only for
/// a record the engine no longer holds, so a stranger naming a held trade
/// costs no read. A damaged record keeps NOT_FOUND: anyone may name any id,
/// so one bad record must not stop the writer (reads of it answer
/// UNAVAILABLE).
///
/// # Errors
/// Storage failed (other than a damaged record).
pub fn refusal_on_forgotten(
    engine: &Engine,
    store: &Store,
    cmd: &Command,
    refused: Rejection,
    now: Timestamp,
) -> Result<Rejection, StorageError> {
    if cmd.target().is_none_or(|t| engine.holds(t)) {
        return Ok(refused);
    }
    let ended = match ended_record(store, cmd, &refused) {
        Ok(Some(ended)) => ended,
        Ok(None) | Err(StorageError::Corrupt { .. }) => return Ok(refused),
        Err(e) => return Err(e),
    };
    Ok(engine
        .refusal_on_ended(cmd, ended.as_ref(), now)
        .unwrap_or(refused))
}

/// History's record of what `cmd` acts on, when the engine `refused` it
/// NOT_FOUND for that record.
fn ended_record(
    store: &Store,
    cmd: &Command,
    refused: &Rejection,
) -> Result<Option<Ended>, StorageError> {
    Ok(match (cmd.target(), refused) {
        (Some(Target::Trade(id)), Rejection::TradeNotFound(r)) if id == *r => {
            store.trade(id)?.map(Ended::Trade)
        }
        (Some(Target::Listing(id)), Rejection::ListingNotFound(r)) if id == *r => {
            store.listing(id)?.map(Ended::Listing)
        }
        (Some(Target::BuyOrder(id)), Rejection::BuyOrderNotFound(r)) if id == *r => {
            store.buy_order(id)?.map(Ended::BuyOrder)
        }
        _ => None,
    })
}

/// Records an event needs besides the group's event record: a chat message
/// (read per trade) and the per-user index of a new trade.
pub(crate) fn stage_event_indexes(batch: &mut Batch, e: &Event) -> Result<(), StorageError> {
    match e.kind {
        EventKind::ChatPosted { trade, .. } => {
            Store::stage_record(batch, &crate::store::chat_key(trade, e.seq), e)?;
        }
        EventKind::TradeCreated {
            trade,
            seller,
            buyer,
            ..
        } => {
            for user in [seller, buyer] {
                batch.insert(
                    crate::store::user_key(kind::USER_TRADE, user, trade.0).as_slice(),
                    [],
                );
            }
        }
        _ => {}
    }
    Ok(())
}

impl Writer {
    /// Writes the final state of every trade, listing and buy order the
    /// group ended (or changed after it ended), and every appeal it touched,
    /// so history outlives the engine's working set. Open records live in
    /// the engine (and its snapshot and journal); writing each of their
    /// steps would only be rewritten later.
    ///
    /// Versions are collected per record in `history` and staged once, at
    /// the end of the group ([`Writer::stage_collected_history`]): a record
    /// collected twice (before a `FireDue` and after) must not leave the
    /// pieces of its first version in the batch.
    pub(crate) fn collect_history(
        &self,
        batch: &mut Batch,
        ids: &GroupChanges,
        history: &mut History,
    ) -> Result<(), StorageError> {
        let mut keep = |prefix: [u8; 9], pieces| {
            history.insert(prefix, pieces);
        };
        for id in &ids.trades {
            if let Some(t) = self.engine.trade(*id)
                && !t.state.is_open()
            {
                let prefix = codec::key_u64(kind::TRADE, id.0);
                keep(prefix, codec::encode_pieces(&prefix, t)?);
            }
            if let Some(a) = self.engine.appeal(*id) {
                let prefix = codec::key_u64(kind::APPEAL, id.0);
                keep(prefix, codec::encode_pieces(&prefix, a)?);
            }
        }
        for id in &ids.listings {
            if let Some(l) = self.engine.listing(*id) {
                batch.insert(
                    crate::store::user_key(kind::USER_LISTING, l.seller, id.0).as_slice(),
                    [],
                );
                if !l.state.is_live() {
                    let prefix = codec::key_u64(kind::LISTING, id.0);
                    keep(prefix, codec::encode_pieces(&prefix, l)?);
                }
            }
        }
        for id in &ids.orders {
            if let Some(o) = self.engine.buy_order(*id)
                && o.state != otc_engine::buy::BuyOrderState::Resting
            {
                let prefix = codec::key_u64(kind::BUY_ORDER, id.0);
                keep(prefix, codec::encode_pieces(&prefix, o)?);
            }
        }
        Ok(())
    }

    /// Stages the latest collected version of each history record, replacing
    /// whatever pieces it had on disk.
    pub(crate) fn stage_collected_history(
        &self,
        batch: &mut Batch,
        history: History,
    ) -> Result<(), StorageError> {
        for (prefix, pieces) in history {
            self.store.stage_pieces_replacing(batch, &prefix, pieces)?;
        }
        Ok(())
    }

    /// Housekeeping at `now`: forgets request ids and events past their
    /// retention. Bounded work per call.
    ///
    /// # Errors
    /// A commit fails (the writer stops).
    pub fn maintain(&mut self, now: Timestamp) -> Result<(), StorageError> {
        self.running()?;
        let cutoff = now.plus_ms(-self.options.idempotency_retention_ms);
        self.idem.forget_before(cutoff);
        let mut batch = Batch::default();
        let staged = self
            .store
            .stage_idempotency_prune(&mut batch, cutoff, 100_000);
        let n = self.stop_on(staged)?;
        let result = if n > 0 {
            self.store.commit(batch)
        } else {
            Ok(())
        }
        .and_then(|()| {
            self.store
                .prune_events(
                    now.plus_ms(-self.engine.config().event_retention_ms),
                    10_000,
                )
                .map(|_| ())
        });
        self.stop_on(result)
    }
}
