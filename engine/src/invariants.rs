//! The ledger invariants (SPEC §4) and the state's internal consistency,
//! checked in full; and a deterministic digest of the whole state.

use std::collections::BTreeMap;

use crate::appeal::AppealStatus;
use crate::buy::BuyOrderState;
use crate::engine::{Engine, State};
use crate::ids::{MethodId, UserId};
use crate::listing::ListingState;
use crate::money::{Asset, CoinAmount, FiatAmount};
use crate::timers::Deadline;
use crate::trade::TradeState;

/// FNV-1a, 64-bit: a tiny stable hash, so a digest means the same on every
/// build and machine (std's hasher promises neither).
struct Fnv(u64);

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn add(
    map: &mut BTreeMap<(UserId, Asset), CoinAmount>,
    key: (UserId, Asset),
    v: CoinAmount,
) -> Result<(), String> {
    let e = map.entry(key).or_default();
    *e = e.checked_add(v).ok_or("escrow sum overflow")?;
    Ok(())
}

impl Engine {
    /// A deterministic digest of the whole state: equal digests mean equal
    /// state (up to hash collisions). Used to compare before-crash with
    /// after-recovery.
    pub fn digest(&self) -> u64 {
        state_digest(&self.state)
    }

    /// Checks L1 (conservation), L2 (escrow) and the internal indexes.
    ///
    /// # Errors
    /// A sentence naming the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = &self.state;
        self.check_l1(s)?;
        self.check_l2(s)?;
        self.check_listings(s)?;
        self.check_trades(s)?;
        self.check_orders_and_appeals(s)?;
        s.deadlines.check()?;
        Ok(())
    }

    /// L1: per asset, Σ available + Σ escrowed = Σ deposits − Σ withdrawals.
    fn check_l1(&self, s: &State) -> Result<(), String> {
        let mut held: BTreeMap<Asset, CoinAmount> = BTreeMap::new();
        for ((_, asset), b) in s.balances.sorted() {
            let e = held.entry(*asset).or_default();
            *e = e
                .checked_add(b.available)
                .and_then(|x| x.checked_add(b.escrowed))
                .ok_or("balance sum overflow")?;
        }
        let assets: std::collections::BTreeSet<Asset> =
            held.keys().chain(s.totals.keys()).copied().collect();
        for asset in assets {
            let t = s.totals.get(&asset).copied().unwrap_or_default();
            let net = t
                .deposited
                .checked_sub(t.withdrawn)
                .ok_or_else(|| format!("L1: {asset} withdrawn exceeds deposited"))?;
            let h = held.get(&asset).copied().unwrap_or_default();
            if h != net {
                return Err(format!(
                    "L1 broken for {asset}: balances hold {h}, deposits − withdrawals = {net}"
                ));
            }
        }
        Ok(())
    }

    /// L2: each user's escrow = live listing remainders + open trades as seller.
    fn check_l2(&self, s: &State) -> Result<(), String> {
        let mut expected: BTreeMap<(UserId, Asset), CoinAmount> = BTreeMap::new();
        for l in s.listings.values() {
            if l.state.is_live() {
                add(&mut expected, (l.seller, l.asset), l.remaining)?;
            } else if !l.remaining.is_zero() {
                return Err(format!(
                    "listing {} is {} but keeps a remainder of {}",
                    l.id,
                    l.state.name(),
                    l.remaining
                ));
            }
        }
        for t in s.trades.values().filter(|t| t.state.is_open()) {
            add(&mut expected, (t.seller, t.asset), t.coin)?;
        }
        for (key, b) in s.balances.sorted() {
            let want = expected.remove(key).unwrap_or_default();
            if b.escrowed != want {
                return Err(format!(
                    "L2 broken for {:?} {}: escrowed {} but listings and trades hold {}",
                    key.0, key.1, b.escrowed, want
                ));
            }
        }
        if let Some((key, v)) = expected.into_iter().find(|(_, v)| !v.is_zero()) {
            return Err(format!(
                "L2 broken for {:?} {}: {v} in listings and trades but no balance",
                key.0, key.1
            ));
        }
        Ok(())
    }

    fn check_listings(&self, s: &State) -> Result<(), String> {
        let mut live: BTreeMap<UserId, u32> = BTreeMap::new();
        let mut method_listings: BTreeMap<(UserId, MethodId), u32> = BTreeMap::new();
        for l in s.listings.values() {
            let in_book = s.book.contains(l);
            if in_book != (l.state == ListingState::Active) {
                return Err(format!(
                    "listing {} is {} but in_book = {in_book}",
                    l.id,
                    l.state.name()
                ));
            }
            if l.state.is_live() {
                *live.entry(l.seller).or_default() += 1;
                for m in &l.methods {
                    *method_listings.entry((l.seller, *m)).or_default() += 1;
                }
            }
        }
        if s.book.len()
            != s.listings
                .values()
                .filter(|l| l.state == ListingState::Active)
                .count()
        {
            return Err("the book holds listings that are not active".into());
        }
        s.book.check_floating()?;
        for (id, u) in s.users.sorted() {
            if u.live_listings != live.get(id).copied().unwrap_or(0) {
                return Err(format!(
                    "{id:?} counts {} live listings, has {:?}",
                    u.live_listings,
                    live.get(id)
                ));
            }
            for (mid, m) in &u.methods {
                if m.live_listings != method_listings.get(&(*id, *mid)).copied().unwrap_or(0) {
                    return Err(format!(
                        "method {mid} of {id:?} miscounts its live listings"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_trades(&self, s: &State) -> Result<(), String> {
        let mut outstanding: BTreeMap<UserId, FiatAmount> = BTreeMap::new();
        let mut method_trades: BTreeMap<(UserId, MethodId), u32> = BTreeMap::new();
        let mut open_buys: BTreeMap<UserId, u32> = BTreeMap::new();
        let forgets: std::collections::BTreeSet<crate::ids::TradeId> = s
            .deadlines
            .iter()
            .filter_map(|(_, d)| match d {
                Deadline::ForgetTrade(id) => Some(*id),
                _ => None,
            })
            .collect();
        for t in s.trades.values() {
            let due = |at, what| s.deadlines.contains(at, what);
            let ok = match t.state {
                TradeState::AwaitingPayment { pay_by } => due(pay_by, Deadline::PaymentDue(t.id)),
                TradeState::Paid { auto_appeal_at, .. } => {
                    due(auto_appeal_at, Deadline::AutoAppeal(t.id))
                }
                TradeState::Appealed { .. } => {
                    s.appeals.get(&t.id).is_some_and(|a| a.outcome.is_none())
                }
                TradeState::Released { .. } | TradeState::Cancelled { .. } => {
                    forgets.contains(&t.id)
                }
            };
            if !ok {
                return Err(format!(
                    "trade {} is {} without its deadline or appeal",
                    t.id,
                    t.state.kind().name()
                ));
            }
            if t.state.is_open() {
                *method_trades.entry((t.seller, t.method)).or_default() += 1;
                if t.fast_match.is_none() {
                    *open_buys.entry(t.buyer).or_default() += 1;
                }
                if t.fast_match.is_some() {
                    let e = outstanding.entry(t.buyer).or_default();
                    *e = e.checked_add(t.fiat_amount).ok_or("outstanding overflow")?;
                }
            }
            if t.fiat_amount != t.price.fiat_for(t.coin).ok_or("fiat overflow")? {
                return Err(format!(
                    "trade {} fiat {} ≠ coin × price rounded half-up",
                    t.id, t.fiat_amount
                ));
            }
        }
        s.trades.check("trade")?;
        s.listings.check("listing")?;
        s.user_trades.check("trade")?;
        s.user_listings.check("listing")?;
        s.user_buy_orders.check("buy order")?;
        if s.user_trades.len() != 2 * s.trades.len()
            || s.trades.values().any(|t| {
                !s.user_trades.contains(t.buyer, t.id) || !s.user_trades.contains(t.seller, t.id)
            })
        {
            return Err("the per-user trade index does not match the trades".into());
        }
        if s.user_listings.len() != s.listings.len()
            || s.user_buy_orders.len() != s.buy_orders.len()
            || s.listings
                .values()
                .any(|l| !s.user_listings.contains(l.seller, l.id))
            || s.buy_orders
                .values()
                .any(|o| !s.user_buy_orders.contains(o.buyer, o.id))
        {
            return Err("the per-user listing or buy-order index does not match".into());
        }
        for (id, m) in &s.merchants {
            let want = outstanding.get(id).copied().unwrap_or_default();
            if m.outstanding_fiat != want {
                return Err(format!(
                    "merchant {id:?} outstanding {} but open trades owe {want}",
                    m.outstanding_fiat
                ));
            }
        }
        for (id, u) in s.users.sorted() {
            if u.open_buys != open_buys.get(id).copied().unwrap_or(0) {
                return Err(format!(
                    "{id:?} counts {} open trades as buyer, but has {}",
                    u.open_buys,
                    open_buys.get(id).copied().unwrap_or(0)
                ));
            }
            for (mid, m) in &u.methods {
                if m.open_trades != method_trades.get(&(*id, *mid)).copied().unwrap_or(0) {
                    return Err(format!("method {mid} of {id:?} miscounts its open trades"));
                }
            }
        }
        Ok(())
    }

    fn check_orders_and_appeals(&self, s: &State) -> Result<(), String> {
        let mut resting: BTreeMap<UserId, u32> = BTreeMap::new();
        for o in s.buy_orders.values() {
            let indexed = s
                .resting
                .get(&(o.asset, o.fiat))
                .is_some_and(|set| set.contains(&o.id));
            if indexed != (o.state == BuyOrderState::Resting) {
                return Err(format!(
                    "buy order {} is {:?} but indexed = {indexed}",
                    o.id, o.state
                ));
            }
            if o.state == BuyOrderState::Resting {
                *resting.entry(o.buyer).or_default() += 1;
            }
        }
        for (id, u) in s.users.sorted() {
            if u.resting_buys != resting.get(id).copied().unwrap_or(0) {
                return Err(format!("{id:?} miscounts resting buys"));
            }
        }
        for a in s.appeals.values() {
            let queued = s.appeal_queue.contains(&(a.opened_at, a.trade));
            if queued == (a.status() == AppealStatus::Closed) {
                return Err(format!(
                    "appeal on {} is {:?} but queued = {queued}",
                    a.trade,
                    a.status()
                ));
            }
        }
        if s.next_seq == 0 || s.next_id == 0 {
            return Err("sequence counters must start at 1".into());
        }
        Ok(())
    }
}

/// The digest of a state (see [`Engine::digest`]).
pub fn state_digest(state: &State) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    // Serializing to a hasher cannot fail: the writer never errors and every
    // type here serializes.
    if let Err(e) = bincode::serialize_into(&mut h, state) {
        panic!("state does not serialize: {e}");
    }
    h.0
}
