//! Fast match (极速匹配, SPEC §9): merchants declare capacity; a seller sells
//! at once to the best fitting online merchant; a merchant that lets the
//! window pass is replaced by the next, up to the configured number of tries.

use std::cmp::Reverse;

use crate::command::{CapacityRequest, FastSellRequest, FundPasswordProof};
use crate::engine::{Engine, invariant};
use crate::event::EventKind;
use crate::ids::{Timestamp, TradeId, UserId};
use crate::merchant::{Capacity, Quote, SelectionKey};
use crate::money::{Asset, CoinAmount, Fiat};
use crate::ops_buy::Fill;
use crate::rejection::Rejection;
use crate::trade::{Actor, FastMatchLink, Trade};
use crate::users::MethodKind;

/// What a fast sell needs from a merchant.
#[derive(Debug, Clone, Copy)]
struct Sale {
    seller: UserId,
    asset: Asset,
    fiat: Fiat,
    coin: CoinAmount,
    kind: MethodKind,
    release_on_verified: bool,
}

impl Engine {
    fn require_merchant(&self, merchant: UserId) -> Result<(), Rejection> {
        if self.state.merchants.contains_key(&merchant) {
            Ok(())
        } else {
            Err(Rejection::NotAMerchant)
        }
    }

    fn validate_capacity(&self, req: &CapacityRequest) -> Result<Capacity, Rejection> {
        let max = self.config.quotes_per_merchant_max;
        if req.quotes.is_empty() || req.quotes.len() > max {
            return Err(Rejection::field(
                "quotes",
                format!("must hold 1 to {max} quotes"),
            ));
        }
        let mut quotes: Vec<Quote> = Vec::with_capacity(req.quotes.len());
        for q in &req.quotes {
            self.asset_spec(q.asset)?;
            let quote = Quote {
                asset: q.asset,
                fiat: q.fiat,
                bid: self.price_arg("quotes.bid", q.bid, q.fiat)?,
                min_fiat: self.fiat_arg("quotes.min_fiat", q.min_fiat, q.fiat)?,
                max_fiat: self.fiat_arg("quotes.max_fiat", q.max_fiat, q.fiat)?,
            };
            if quote.min_fiat > quote.max_fiat {
                return Err(Rejection::field(
                    "quotes.min_fiat",
                    "must not exceed quotes.max_fiat",
                ));
            }
            if quotes
                .iter()
                .any(|other| other.asset == q.asset && other.fiat == q.fiat)
            {
                return Err(Rejection::field(
                    "quotes",
                    format!("name {}/{} more than once", q.asset, q.fiat),
                ));
            }
            if quotes.first().is_some_and(|first| first.fiat != q.fiat) {
                return Err(Rejection::field(
                    "quotes",
                    "must all use one fiat currency (outstanding is counted in it)",
                ));
            }
            quotes.push(quote);
        }
        let mut methods = req.methods.clone();
        methods.sort_unstable();
        methods.dedup();
        if methods.is_empty() {
            return Err(Rejection::field(
                "methods",
                "must name at least one payment kind",
            ));
        }
        let fiat = quotes[0].fiat;
        let max_outstanding_fiat =
            self.fiat_arg("max_outstanding_fiat", req.max_outstanding_fiat, fiat)?;
        Ok(Capacity {
            quotes,
            methods,
            max_outstanding_fiat,
        })
    }

    pub(crate) fn set_capacity(
        &mut self,
        merchant: UserId,
        req: &CapacityRequest,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.require_merchant(merchant)?;
        let capacity = self.validate_capacity(req)?;
        invariant(self.state.merchants.get_mut(&merchant), "merchant vanished").capacity =
            Some(capacity);
        self.emit(now, EventKind::MerchantCapacitySet { merchant });
        Ok(())
    }

    pub(crate) fn set_online(
        &mut self,
        merchant: UserId,
        online: bool,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.require_merchant(merchant)?;
        let m = invariant(self.state.merchants.get_mut(&merchant), "merchant vanished");
        if online && m.capacity.is_none() {
            return Err(Rejection::Precondition(
                "declare capacity before going online",
            ));
        }
        if m.online == online {
            return Ok(());
        }
        m.online = online;
        self.emit(now, EventKind::MerchantOnlineSet { merchant, online });
        Ok(())
    }

    /// The best fitting online merchant not yet tried: highest bid, then least
    /// outstanding, then longest idle (SPEC §9).
    fn select_merchant(&self, sale: &Sale, tried: &[UserId]) -> Result<(UserId, Quote), Rejection> {
        let mut best: Option<(SelectionKey, Quote)> = None;
        let mut any_online = false;
        for (&id, m) in &self.state.merchants {
            if !m.online
                || id == sale.seller
                || tried.contains(&id)
                || self.is_blocked(id, sale.seller)
            {
                continue;
            }
            any_online = true;
            let Some(cap) = &m.capacity else { continue };
            let Some(quote) = m.quote_for(sale.asset, sale.fiat) else {
                continue;
            };
            let Some(fiat) = quote.bid.fiat_for(sale.coin) else {
                continue;
            };
            let room = m
                .outstanding_fiat
                .checked_add(fiat)
                .is_some_and(|o| o <= cap.max_outstanding_fiat);
            if !cap.methods.contains(&sale.kind)
                || fiat < quote.min_fiat
                || fiat > quote.max_fiat
                || !room
            {
                continue;
            }
            let key = (
                Reverse(quote.bid),
                m.outstanding_fiat,
                m.last_assigned_at,
                id,
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, *quote));
            }
        }
        match best {
            Some(((_, _, _, id), quote)) => Ok((id, quote)),
            None if !any_online => Err(Rejection::NoFittingMerchant(
                "no partner merchant is online",
            )),
            None => Err(Rejection::NoFittingMerchant(
                "no online merchant takes this amount, asset and payment method within its limits",
            )),
        }
    }

    pub(crate) fn fast_sell(
        &mut self,
        seller: UserId,
        proof: FundPasswordProof,
        req: &FastSellRequest,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.require_ready_to_sell(seller)?;
        self.fiat_spec(req.fiat)?;
        let coin = self.coin_arg("coin_amount", req.amount, req.asset)?;
        let kind = self
            .user(seller)
            .and_then(|u| u.methods.get(&req.method))
            .map(|m| m.details.kind())
            .ok_or(Rejection::UnknownMethod(req.method))?;
        if req.release_on_verified && !self.is_channel(seller, req.method) {
            return Err(Rejection::field(
                "release_on_verified_payment",
                "needs method_id to be a payment channel",
            ));
        }
        self.require_available(seller, req.asset, coin)?;
        let sale = Sale {
            seller,
            asset: req.asset,
            fiat: req.fiat,
            coin,
            kind,
            release_on_verified: req.release_on_verified,
        };
        let (merchant, quote) = self.select_merchant(&sale, &[])?;
        // The password last (see `publish`).
        self.check_proof(seller, proof, now)?;
        // Validated: from here nothing fails.
        self.password_succeeded(seller);
        self.escrow(seller, req.asset, coin);
        let id = TradeId(self.next_id());
        let link = FastMatchLink {
            origin: id,
            attempt: 1,
            tried: vec![merchant],
        };
        self.open_fast_trade(id, &sale, req.method, merchant, quote, link, now);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn open_fast_trade(
        &mut self,
        id: TradeId,
        sale: &Sale,
        method: crate::ids::MethodId,
        merchant: UserId,
        quote: Quote,
        link: FastMatchLink,
        now: Timestamp,
    ) {
        let fiat = invariant(
            quote.bid.fiat_for(sale.coin),
            "fiat overflow after selection",
        );
        let fill = Fill {
            coin: sale.coin,
            fiat,
            method,
            price: quote.bid,
        };
        let window = self.config.merchant_window_ms;
        let trade = self.new_trade(
            id,
            sale.seller,
            merchant,
            (sale.asset, sale.fiat, quote.bid),
            fill,
            window,
            now,
        );
        let mut trade = Trade {
            fast_match: Some(link),
            release_on_verified: sale.release_on_verified,
            ..trade
        };
        trade.timeline[0].actor = Actor::Seller(sale.seller);
        let m = invariant(self.state.merchants.get_mut(&merchant), "merchant vanished");
        m.outstanding_fiat =
            invariant(m.outstanding_fiat.checked_add(fiat), "outstanding overflow");
        m.last_assigned_at = Some(now);
        self.insert_trade(trade, now);
    }

    /// After a merchant let the window pass: the next fitting merchant gets
    /// the coin as a new, linked trade (SPEC §9). False after the last try,
    /// with no merchant fitting, or when the seller has since removed the
    /// payment method the sale named: the caller returns the coin to the
    /// seller.
    pub(crate) fn redispatch(&mut self, t: &Trade, now: Timestamp) -> bool {
        let link = invariant(t.fast_match.clone(), "re-dispatch of a listing trade");
        let kind = t.method_details.kind();
        let sale = Sale {
            seller: t.seller,
            asset: t.asset,
            fiat: t.fiat,
            coin: t.coin,
            kind,
            release_on_verified: t.release_on_verified,
        };
        let next = if link.attempt < self.config.fast_match_tries_max {
            self.select_merchant(&sale, &link.tried).ok()
        } else {
            None
        };
        let method_bound = self
            .user(t.seller)
            .is_some_and(|u| u.methods.contains_key(&t.method));
        match next {
            Some((merchant, quote)) if method_bound => {
                let mut tried = link.tried;
                tried.push(merchant);
                let link = FastMatchLink {
                    origin: link.origin,
                    attempt: link.attempt + 1,
                    tried,
                };
                let id = TradeId(self.next_id());
                self.open_fast_trade(id, &sale, t.method, merchant, quote, link, now);
                true
            }
            _ => false,
        }
    }
}
