//! Scenarios that read like SPEC §7–§11: listings, matching, the trade table
//! and timers (appeals in `trades/appeals.rs`). Every helper checks L1/L2
//! after each command, and every rejection is checked to change nothing.

#[path = "trades/appeals.rs"]
mod appeals;
mod common;
#[path = "trades/forgotten.rs"]
mod forgotten;

use common::*;
use otc_engine::command::{BuyAmount, Resolution};
use otc_engine::event::SettledBy;
use otc_engine::listing::{CloseReason, ListingState};
use otc_engine::trade::{Actor, TimelineWhat, TransitionReason};
use otc_engine::{Command, EngineConfig, EventKind, Rejection, RejectionKind};

const S: u8 = 1; // seller
const B: u8 = 2; // buyer
const AGENT: u8 = 9;

/// A seller with 100 EB listed at 7.00 (min 10, max 700), and a trade of 10 EB
/// (70.00 CNY) to the buyer.
fn matched() -> (World, otc_engine::ListingId, otc_engine::TradeId) {
    let mut w = World::default();
    w.seller(user(S), "100");
    let l = w.publish(user(S), "7.00", "100", "10", "700");
    let t = w.buy_coin(user(B), "10");
    (w, l, t)
}

fn paid() -> (World, otc_engine::ListingId, otc_engine::TradeId) {
    let (mut w, l, t) = matched();
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    (w, l, t)
}

fn appealed() -> (World, otc_engine::ListingId, otc_engine::TradeId) {
    let (mut w, l, t) = paid();
    w.advance(minutes(30));
    w.ok(Command::OpenAppeal {
        user: user(S),
        trade: t,
        reason: "fiat not received".into(),
    });
    (w, l, t)
}

#[test]
fn full_lifecycle_moves_escrow_to_the_buyer() {
    let mut w = World::default();
    w.seller(user(S), "100");
    assert_eq!(w.bal(user(S)), (d("100"), d("0")));
    let l = w.publish(user(S), "7.00", "100", "10", "700");
    assert_eq!(
        w.bal(user(S)),
        (d("0"), d("100")),
        "publishing escrows the total"
    );
    let t = w.buy_coin(user(B), "10");
    assert_eq!(
        w.remaining(l),
        d("90"),
        "the match reduces the remainder in the same step"
    );
    assert_eq!(
        w.bal(user(S)),
        (d("0"), d("100")),
        "the trade's coin stays escrowed"
    );
    let trade = w.e.trade(t).unwrap();
    assert_eq!(trade.fiat_amount.value(), d("70.00"));
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(w.state_of(t), "PAID");
    w.release(user(S), t);
    assert_eq!(w.state_of(t), "RELEASED");
    assert_eq!(w.bal(user(S)), (d("0"), d("90")));
    assert_eq!(w.bal(user(B)), (d("10"), d("0")));
    let reasons: Vec<_> =
        w.e.trade(t)
            .unwrap()
            .timeline
            .iter()
            .filter_map(|e| match e.what {
                TimelineWhat::Transition { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
    assert_eq!(
        reasons,
        [
            TransitionReason::Matched,
            TransitionReason::MarkedPaid,
            TransitionReason::SellerReleased
        ]
    );
}

#[test]
fn payment_timeout_cancels_and_returns_coin_to_the_listing() {
    let (mut w, l, t) = matched();
    w.advance(minutes(14));
    assert_eq!(w.state_of(t), "AWAITING_PAYMENT");
    let events = w.advance(minutes(1));
    assert_eq!(w.state_of(t), "CANCELLED");
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::TradeTransitioned {
            reason: TransitionReason::PaymentTimeout,
            actor: Actor::System,
            ..
        }
    )));
    assert_eq!(w.remaining(l), d("100"));
    assert_eq!(w.bal(user(S)), (d("0"), d("100")));
}

#[test]
fn mark_paid_after_the_window_is_refused() {
    let (mut w, _, t) = matched();
    w.now = w.now.plus_ms(minutes(15)); // the timer has not fired yet
    let r = w.err(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(r, Rejection::PaymentWindowClosed(t));
}

#[test]
fn buyer_cancel_reopens_a_fully_traded_listing() {
    let mut w = World::default();
    w.seller(user(S), "10");
    let l = w.publish(user(S), "7", "10", "10", "700");
    let t = w.buy_coin(user(B), "10");
    assert_eq!(
        w.e.listing(l).unwrap().state,
        ListingState::Closed(CloseReason::FullyTraded)
    );
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(w.e.listing(l).unwrap().state, ListingState::Active);
    assert_eq!(w.remaining(l), d("10"));
    assert_eq!(w.bal(user(S)), (d("0"), d("10")));
}

#[test]
fn coin_from_a_trade_of_a_cancelled_listing_goes_to_available() {
    let (mut w, l, t) = matched();
    w.ok(Command::CancelListing {
        seller: user(S),
        listing: l,
    });
    assert_eq!(
        w.bal(user(S)),
        (d("90"), d("10")),
        "cancel returns the remainder, the trade stays escrowed"
    );
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(w.bal(user(S)), (d("100"), d("0")));
}

#[test]
fn the_seller_can_never_cancel_and_nobody_releases_before_paid() {
    let (mut w, _, t) = matched();
    let r = w.err(Command::CancelTrade {
        buyer: user(S),
        trade: t,
    });
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
    assert!(
        r.to_string().contains("AWAITING_PAYMENT")
            && r.to_string().contains("seller can never cancel"),
        "{r}"
    );
    let proof = w.proof(user(S));
    let r = w.err(Command::Release {
        seller: user(S),
        trade: t,
        proof,
    });
    assert!(r.to_string().contains("AWAITING_PAYMENT"), "{r}");
    assert_eq!(r.kind(), RejectionKind::FailedPrecondition);
    let r = w.err(Command::MarkPaid {
        buyer: user(7),
        trade: t,
    });
    assert_eq!(
        r,
        Rejection::TradeNotFound(t),
        "strangers do not learn the trade exists"
    );
}

/// Every action that the SPEC §10 table does not allow, in every state, is
/// refused with FAILED_PRECONDITION naming the state, and changes nothing.
#[test]
fn every_other_action_is_refused_naming_the_state() {
    type Setup = fn() -> (World, otc_engine::ListingId, otc_engine::TradeId);
    let released: Setup = || {
        let (mut w, l, t) = paid();
        w.release(user(S), t);
        (w, l, t)
    };
    let cancelled: Setup = || {
        let (mut w, l, t) = matched();
        w.ok(Command::CancelTrade {
            buyer: user(B),
            trade: t,
        });
        (w, l, t)
    };
    let table: [(Setup, &str, &[&str]); 5] = [
        (
            matched,
            "AWAITING_PAYMENT",
            &["release", "appeal", "resolve"],
        ),
        (paid, "PAID", &["mark_paid", "cancel", "resolve"]),
        (appealed, "APPEALED", &["mark_paid", "appeal"]),
        (
            released,
            "RELEASED",
            &["mark_paid", "cancel", "release", "appeal", "resolve"],
        ),
        (
            cancelled,
            "CANCELLED",
            &["mark_paid", "cancel", "release", "appeal", "resolve"],
        ),
    ];
    for (setup, state, actions) in table {
        for action in actions {
            let (mut w, _, t) = setup();
            if state != "AWAITING_PAYMENT" {
                w.advance(minutes(31)); // past the appeal window, so only the state refuses
            }
            let proof = w.proof(user(S));
            let cmd = match *action {
                "mark_paid" => Command::MarkPaid {
                    buyer: user(B),
                    trade: t,
                },
                "cancel" => Command::CancelTrade {
                    buyer: user(B),
                    trade: t,
                },
                "release" => Command::Release {
                    seller: user(S),
                    trade: t,
                    proof,
                },
                "appeal" => Command::OpenAppeal {
                    user: user(B),
                    trade: t,
                    reason: "r".into(),
                },
                _ => Command::ResolveAppeal {
                    agent: user(AGENT),
                    trade: t,
                    resolution: Resolution::Release,
                    note: "n".into(),
                },
            };
            let r = w.err(cmd);
            assert_eq!(
                r.kind(),
                RejectionKind::FailedPrecondition,
                "{action} in {state}: {r}"
            );
            assert!(
                r.to_string().contains(state) || r.to_string().contains("CLOSED"),
                "{action} in {state}: {r}"
            );
        }
    }
}

#[test]
fn firing_deadlines_twice_changes_nothing() {
    let (mut w, _, t) = matched();
    w.advance(minutes(20));
    assert_eq!(w.state_of(t), "CANCELLED");
    let digest = w.e.digest();
    assert!(w.e.fire_due(w.now).is_empty());
    assert_eq!(digest, w.e.digest());
}

#[test]
fn time_never_runs_backwards() {
    let (mut w, _, t) = matched();
    w.advance(minutes(20));
    w.now = w.now.plus_ms(-minutes(60));
    // A late command is applied at the engine's clock, not in the past.
    let r = w.err(Command::MarkPaid {
        buyer: user(B),
        trade: t,
    });
    assert!(r.to_string().contains("CANCELLED"));
}

#[test]
fn release_needs_a_current_fund_password_proof() {
    let (mut w, _, t) = paid();
    let stale = w.proof(user(S));
    let current = Some(stale);
    w.ok(Command::SetFundPassword {
        user: user(S),
        hash: "$argon2id$new".into(),
        current,
    });
    let r = w.err(Command::Release {
        seller: user(S),
        trade: t,
        proof: stale,
    });
    assert_eq!(r, Rejection::StaleFundPasswordProof);
    w.release(user(S), t);
}

#[test]
fn seller_record_counts_releases_and_median_time() {
    let mut w = World::default();
    w.seller(user(S), "100");
    w.publish(user(S), "7", "100", "7", "700");
    for minutes_to_release in [1, 3, 10] {
        let t = w.buy_coin(user(B), "1");
        w.ok(Command::MarkPaid {
            buyer: user(B),
            trade: t,
        });
        w.advance(minutes(minutes_to_release));
        w.release(user(S), t);
    }
    let r = w.e.seller_record(user(S), w.now);
    assert_eq!(r.completed, 3);
    assert_eq!(r.completion_rate, Some(d("1")));
    assert_eq!(r.median_release_ms, Some(minutes(3)));
    let page = w.e.book_page(eb(), cny(), None, 10, w.now);
    assert_eq!(page[0].record, r);
    let later = w.now.plus_ms(31 * otc_engine::ids::MS_PER_DAY);
    assert_eq!(
        w.e.seller_record(user(S), later).completed,
        0,
        "only the last 30 days count"
    );
}

#[test]
fn event_sequence_is_global_and_gap_free() {
    let mut w = World::default();
    let mut all = Vec::new();
    w.seller(user(S), "100");
    let proof = w.proof(user(S));
    let spec = w.spec(user(S), "7", "100", "10", "700");
    all.extend(w.ok(Command::PublishListing {
        seller: user(S),
        proof,
        spec,
    }));
    let request = World::buy_request(BuyAmount::Coin(d("5")));
    all.extend(w.ok(Command::PlaceBuy {
        buyer: user(B),
        request,
    }));
    all.extend(w.advance(minutes(20)));
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    let first = seqs[0];
    assert_eq!(seqs, (first..first + seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(w.e.last_seq(), *seqs.last().unwrap());
}

#[test]
fn chat_is_for_the_parties_of_an_open_trade() {
    let (mut w, _, t) = matched();
    let say = |u: u8, text: &str| Command::PostChat {
        user: user(u),
        trade: t,
        text: text.into(),
        attachment: None,
    };
    let events = w.ok(say(B, "paid via Alipay, please check"));
    assert!(matches!(&events[0].kind, EventKind::ChatPosted { author, .. } if *author == user(B)));
    w.ok(say(S, "received, releasing"));
    assert_eq!(
        w.err(say(7, "hello")),
        Rejection::TradeNotFound(t),
        "nobody else can write"
    );
    assert_eq!(w.err(say(B, "")).kind(), RejectionKind::InvalidArgument);
    assert_eq!(
        w.err(say(B, &"x".repeat(2_001))).kind(),
        RejectionKind::InvalidArgument
    );
    w.ok(Command::CancelTrade {
        buyer: user(B),
        trade: t,
    });
    assert_eq!(
        w.err(say(B, "late")).kind(),
        RejectionKind::FailedPrecondition
    );
}

/// A trade's chat is bounded (SPEC §18): so many messages, so many of them
/// with a file; each refusal names the bound and loses nothing.
#[test]
fn a_trades_chat_is_bounded_in_messages_and_files() {
    let config = EngineConfig {
        chat_messages_per_trade_max: 5,
        chat_files_per_trade_max: 2,
        ..EngineConfig::default()
    };
    let mut w = World::new(config);
    w.seller(user(S), "100");
    w.publish(user(S), "7.00", "100", "10", "700");
    let t = w.buy_coin(user(B), "10");
    let say = |u: u8, file: bool| Command::PostChat {
        user: user(u),
        trade: t,
        text: "receipt".into(),
        attachment: file.then(|| otc_engine::command::AttachmentRef {
            blob_id: "blob-1".into(),
            content_type: "image/png".into(),
            size_bytes: 10,
            file_name: "receipt.png".into(),
        }),
    };
    w.ok(say(B, true));
    w.ok(say(S, true));
    let r = w.err(say(B, true));
    assert_eq!(r.kind(), RejectionKind::ResourceExhausted);
    assert!(
        r.to_string().contains("at most 2 chat files per trade"),
        "{r}"
    );
    // Text still goes, up to the messages' bound, both parties counted.
    w.ok(say(B, false));
    w.ok(say(S, false));
    w.ok(say(B, false));
    let r = w.err(say(S, false));
    assert!(
        r.to_string().contains("at most 5 chat messages per trade"),
        "{r}"
    );
    assert_eq!(w.e.trade(t).expect("trade").chat.messages, 5);
    assert_eq!(w.e.trade(t).expect("trade").chat.files, 2);
}
