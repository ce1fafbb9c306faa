//! Turning a plan's abstract request into a real [`Command`], against the
//! engine as it is when the step runs.

use std::str::FromStr;

use otc_engine::command::{
    BuyAmount, BuyRequest, CapacityRequest, FastSellRequest, FundPasswordProof, ListingSpec,
    MerchantQuote, PriceSpec, Resolution,
};
use otc_engine::payment::{ChannelProvider, GatewayPayment, payment_reference};
use otc_engine::users::{MethodDetails, MethodKind};
use otc_engine::{Asset, Command, Engine, Fiat, TradeId, UserId};
use rust_decimal::Decimal;

use crate::plan::{Act, Party, Password, TradeAct};

/// User `n` of every run.
pub fn user(n: u16) -> UserId {
    UserId(uuid::Uuid::from_u64_pair(
        0x51a0_0000_0000_0000,
        u64::from(n),
    ))
}

/// The customer-service agent of every run.
pub fn agent() -> UserId {
    UserId(uuid::Uuid::from_u64_pair(0x51a0_0000_0000_0001, 0))
}

/// The run's coin and fiat.
pub fn market() -> (Asset, Fiat) {
    let asset = Asset::new("EB").unwrap_or_else(|e| panic!("the coin code: {e}"));
    let fiat = Fiat::new("CNY").unwrap_or_else(|e| panic!("the fiat code: {e}"));
    (asset, fiat)
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or(Decimal::ONE)
}

fn proof(e: &Engine, user: UserId, password: Password) -> FundPasswordProof {
    let version = e.fund_password(user).map_or(0, |(_, v)| v);
    match password {
        Password::Right => FundPasswordProof::matched(version),
        Password::Wrong => FundPasswordProof::wrong(version),
        Password::Stale => FundPasswordProof::matched(version.saturating_sub(1)),
    }
}

fn pick<T: Copy>(items: &[T], k: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(k) % items.len()])
}

/// Who acts for `party` on something between `right` and `other`.
fn actor(party: Party, right: UserId, other: UserId, me: UserId) -> UserId {
    match party {
        Party::Right => right,
        Party::Other => other,
        Party::Stranger if me != right && me != other => me,
        Party::Stranger => agent(),
    }
}

/// `me`'s payment channel.
pub fn channel_of(me: UserId) -> String {
    format!("sim-{}", me.0.as_u64_pair().1)
}

/// The `rank`-th trade from the newest (recent trades are the live ones).
fn newest_trade(e: &Engine, rank: u16) -> Option<&otc_engine::trade::Trade> {
    let trades = &e.state().trades;
    trades
        .values()
        .rev()
        .nth(usize::from(rank) % trades.len().max(1))
        .map(|t| &**t)
}

/// A trade that does not exist.
const NO_TRADE: TradeId = TradeId(u64::MAX);

/// The command user `me` sends for `act`; `n` makes external refs unique.
pub fn command(e: &Engine, me: UserId, act: &Act, n: u64) -> Command {
    let (asset, fiat) = market();
    let methods = |u: UserId| -> Vec<_> {
        e.user(u)
            .map(|s| s.methods.keys().copied().collect())
            .unwrap_or_default()
    };
    let listings: Vec<_> = e.state().listings.keys().collect();
    let seller_of = |id| e.state().listings.get(&id).map_or(me, |l| l.seller);
    match act {
        Act::Deposit { amount, bad } => Command::Deposit {
            user: me,
            asset,
            amount: match bad {
                1 => Decimal::ZERO,
                2 => dec("-5"),
                3 => dec("1.123456789012345"),
                _ => Decimal::from(*amount),
            },
            external_ref: format!("dep-{n}"),
        },
        Act::Withdraw { amount } => Command::Withdraw {
            user: me,
            asset,
            amount: Decimal::from(*amount),
            external_ref: format!("wd-{n}"),
        },
        Act::BindMethod => Command::BindMethod {
            user: me,
            details: MethodDetails::Alipay {
                holder: format!("Sim user {n}"),
                account: format!("sim{n}@pay"),
            },
        },
        Act::SetPassword => {
            let current = e
                .fund_password(me)
                .map(|(_, v)| FundPasswordProof::matched(v));
            Command::SetFundPassword {
                user: me,
                hash: format!("$argon2id$sim{n}"),
                current,
            }
        }
        Act::Publish {
            price,
            total,
            window_s,
            password,
        } => Command::PublishListing {
            seller: me,
            proof: proof(e, me, *password),
            spec: ListingSpec {
                asset,
                fiat,
                price: PriceSpec::Fixed(Decimal::new(690 + i64::from(*price), 2)),
                total: Decimal::from(*total),
                min_fiat: dec("5"),
                max_fiat: dec("5000"),
                methods: methods(me),
                payment_window_ms: window_s.map(|s| i64::from(s) * 1_000),
                terms: String::new(),
                release_on_verified: false,
            },
        },
        Act::Pause { listing, party }
        | Act::Resume { listing, party }
        | Act::CancelListing { listing, party } => {
            let id = pick(&listings, *listing).unwrap_or(otc_engine::ListingId(u64::MAX));
            let owner = seller_of(id);
            let seller = actor(*party, owner, me, me);
            match act {
                Act::Pause { .. } => Command::PauseListing {
                    seller,
                    listing: id,
                },
                Act::Resume { .. } => Command::ResumeListing {
                    seller,
                    listing: id,
                },
                _ => Command::CancelListing {
                    seller,
                    listing: id,
                },
            }
        }
        Act::Buy {
            coin,
            rest,
            max_price,
        } => Command::PlaceBuy {
            buyer: me,
            request: BuyRequest {
                asset,
                fiat,
                amount: BuyAmount::Coin(Decimal::from(*coin)),
                max_price: max_price.map(|p| Decimal::new(690 + i64::from(p), 2)),
                methods: Vec::new(),
                rest: rest.then_some(None),
            },
        },
        Act::CancelBuy { order, party } => {
            let orders: Vec<_> = e.state().buy_orders.keys().copied().collect();
            let id = pick(&orders, *order).unwrap_or(otc_engine::BuyOrderId(u64::MAX));
            let owner = e.state().buy_orders.get(&id).map_or(me, |o| o.buyer);
            Command::CancelBuyOrder {
                buyer: actor(*party, owner, me, me),
                order: id,
            }
        }
        Act::BecomeMerchant => Command::SetMerchantCapacity {
            merchant: me,
            capacity: CapacityRequest {
                quotes: vec![MerchantQuote {
                    asset,
                    fiat,
                    bid: dec("6.95"),
                    min_fiat: dec("5"),
                    max_fiat: dec("5000"),
                }],
                methods: vec![MethodKind::Alipay],
                max_outstanding_fiat: dec("20000"),
            },
        },
        Act::FastSell { coin, password } => Command::FastSell {
            seller: me,
            proof: proof(e, me, *password),
            request: FastSellRequest {
                asset,
                fiat,
                amount: Decimal::from(*coin),
                method: methods(me)
                    .first()
                    .copied()
                    .unwrap_or(otc_engine::MethodId(u64::MAX)),
                release_on_verified: false,
            },
        },
        Act::Trade {
            trade,
            party,
            action,
        } => trade_command(e, me, *trade, *party, *action),
        Act::BindChannel => Command::BindMethod {
            user: me,
            details: MethodDetails::Channel {
                channel: channel_of(me),
                provider: ChannelProvider::Hmac,
            },
        },
        Act::GatewayPay {
            trade,
            right_amount,
            repeat,
        } => {
            let t = newest_trade(e, *trade);
            let (id, amount) =
                t.map_or((NO_TRADE, Decimal::ONE), |t| (t.id, t.fiat_amount.value()));
            let channel = match t.map(|t| &*t.method_details) {
                Some(MethodDetails::Channel { channel, .. }) => channel.clone(),
                _ => channel_of(me),
            };
            Command::GatewayPayment(GatewayPayment {
                channel,
                reference: payment_reference(id),
                txn_id: format!("txn-{}", if *repeat { n.saturating_sub(1) } else { n }),
                amount: if *right_amount {
                    amount
                } else {
                    amount + Decimal::ONE
                },
                currency: "CNY".into(),
                paid_at: None,
                history_checked: false,
                ended: None,
            })
        }
        Act::ReferencePrice { price } => Command::SetReferencePrice {
            asset,
            fiat,
            price: Decimal::new(690 + i64::from(*price), 2),
            source: "sim".into(),
        },
        Act::PublishFloating { premium_bps, total } => Command::PublishListing {
            seller: me,
            proof: proof(e, me, Password::Right),
            spec: ListingSpec {
                asset,
                fiat,
                price: PriceSpec::Floating {
                    premium_bps: i32::from(*premium_bps),
                    floor: Some(dec("6.50")),
                    ceiling: Some(dec("7.50")),
                },
                total: Decimal::from(*total),
                min_fiat: dec("5"),
                max_fiat: dec("5000"),
                methods: methods(me),
                payment_window_ms: None,
                terms: String::new(),
                release_on_verified: methods(me).len() % 2 == 1,
            },
        },
        Act::Block { other, unblock } => {
            let target = user(*other);
            if *unblock {
                Command::Unblock { user: me, target }
            } else {
                Command::Block { user: me, target }
            }
        }
        Act::RemoveMethod => Command::RemoveMethod {
            user: me,
            method: methods(me)
                .first()
                .copied()
                .unwrap_or(otc_engine::MethodId(u64::MAX)),
        },
    }
}

fn trade_command(e: &Engine, me: UserId, rank: u16, party: Party, action: TradeAct) -> Command {
    let (id, buyer, seller) = match newest_trade(e, rank) {
        Some(t) if rank < 390 => (t.id, t.buyer, t.seller),
        _ => (NO_TRADE, me, me),
    };
    match action {
        TradeAct::MarkPaid => Command::MarkPaid {
            buyer: actor(party, buyer, seller, me),
            trade: id,
        },
        TradeAct::Cancel => Command::CancelTrade {
            buyer: actor(party, buyer, seller, me),
            trade: id,
        },
        TradeAct::Release(password) => {
            let who = actor(party, seller, buyer, me);
            Command::Release {
                seller: who,
                trade: id,
                proof: proof(e, who, password),
            }
        }
        TradeAct::Appeal => Command::OpenAppeal {
            user: actor(
                party,
                if rank.is_multiple_of(2) {
                    buyer
                } else {
                    seller
                },
                me,
                me,
            ),
            trade: id,
            reason: "the other side did not act".into(),
        },
        TradeAct::Evidence => Command::AddEvidence {
            user: actor(party, buyer, seller, me),
            trade: id,
            description: "bank statement".into(),
            attachment: None,
        },
        TradeAct::Chat => Command::PostChat {
            user: actor(party, buyer, seller, me),
            trade: id,
            text: "hello".into(),
            attachment: None,
        },
        TradeAct::Claim => Command::ClaimAppeal {
            agent: agent(),
            trade: id,
        },
        TradeAct::Unclaim => Command::UnclaimAppeal {
            agent: agent(),
            trade: id,
        },
        TradeAct::Resolve { release, note } => Command::ResolveAppeal {
            agent: agent(),
            trade: id,
            resolution: if release {
                Resolution::Release
            } else {
                Resolution::Refund
            },
            note: if note {
                "checked the bank statement".into()
            } else {
                String::new()
            },
        },
    }
}

/// Assigns `me` the run's channel (a back-office step before binding it).
pub fn assign_channel(me: UserId) -> Command {
    Command::AssignChannel {
        user: me,
        channel: channel_of(me),
        provider: ChannelProvider::Hmac,
    }
}

/// Makes `me` a merchant first (a back-office step before capacity).
pub fn register(me: UserId) -> Command {
    Command::RegisterMerchant { user: me }
}
