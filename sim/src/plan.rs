//! A run's plan: the list of steps a seed generates, before anything runs.
//! Steps name users by index and listings, orders and trades by their rank
//! among those that exist when the step runs, so removing steps (shrinking)
//! leaves a plan that still means something.

use crate::rng::Rng;

/// Which side of a trade acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The one SPEC lets act (buyer to pay or cancel, seller to release).
    Right,
    /// The trade's other side.
    Other,
    /// Someone who is neither.
    Stranger,
}

/// The fund password a protected command carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    /// Matches the current hash.
    Right,
    /// Does not match.
    Wrong,
    /// Checked against an older hash.
    Stale,
}

/// A client's request, with abstract references (field names say what
/// they hold: amounts in whole coin, ranks among what exists).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Act {
    /// Back office deposit; `bad` sends a malformed amount.
    Deposit { amount: u32, bad: u8 },
    /// Back office withdrawal (may exceed the balance).
    Withdraw { amount: u32 },
    /// Bind an Alipay account.
    BindMethod,
    /// Set or change the fund password.
    SetPassword,
    /// Publish a listing at 6.90 + `price`/100.
    Publish {
        price: u8,
        total: u32,
        window_s: Option<u16>,
        password: Password,
    },
    /// Pause the `listing`-th live listing (maybe someone else's).
    Pause { listing: u16, party: Party },
    /// Resume it.
    Resume { listing: u16, party: Party },
    /// Cancel it.
    CancelListing { listing: u16, party: Party },
    /// Buy `coin` (0 and huge amounts are refused), maybe resting.
    Buy {
        coin: u16,
        rest: bool,
        max_price: Option<u8>,
    },
    /// Cancel the `order`-th resting buy.
    CancelBuy { order: u16, party: Party },
    /// A trade action on the `trade`-th trade.
    Trade {
        trade: u16,
        party: Party,
        action: TradeAct,
    },
    /// Make this user a merchant and declare capacity, online.
    BecomeMerchant,
    /// Assign this user a payment channel and bind it (SPEC §19).
    BindChannel,
    /// A gateway's verified payment for the `trade`-th trade: the right
    /// amount or not, a new transaction or a repeat of the last.
    GatewayPay {
        trade: u16,
        right_amount: bool,
        repeat: bool,
    },
    /// The reference price moves (SPEC §22).
    ReferencePrice { price: u8 },
    /// Publish a floating listing at `premium_bps` over the reference.
    PublishFloating { premium_bps: i16, total: u32 },
    /// Block (or unblock) another user.
    Block { other: u16, unblock: bool },
    /// Remove this user's first method (refused while in use).
    RemoveMethod,
    /// Fast-sell `coin` to a merchant.
    FastSell { coin: u16, password: Password },
}

/// What is done to a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TradeAct {
    /// Buyer says paid.
    MarkPaid,
    /// Buyer cancels.
    Cancel,
    /// Seller releases.
    Release(Password),
    /// A party appeals.
    Appeal,
    /// A party adds evidence.
    Evidence,
    /// A party chats.
    Chat,
    /// CS claims (party ignored: the agent acts).
    Claim,
    /// CS hands back.
    Unclaim,
    /// CS resolves; `note` false sends an empty note.
    Resolve { release: bool, note: bool },
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Step {
    /// User `user` sends `act` (joins the group being gathered).
    Request { user: u16, act: Act },
    /// The `k`-th acknowledged request sent again with its id.
    Retry(u32),
    /// Another request under the `k`-th acknowledged request's id.
    Reuse(u32),
    /// The group gathered so far is committed.
    Commit,
    /// Time passes (ms).
    Advance(i64),
    /// sled is flushed, as the background flusher would; `fail` trips
    /// sled's own failpoint for it.
    FlushSled { fail: bool },
    /// The power goes off on the `n`-th disk operation from now.
    PowerOff(u8),
    /// The next `fdatasync` fails.
    FailSync,
    /// The next read of the journal returns a flipped bit (the next
    /// restart reads it).
    FlipRead,
    /// The process dies here and restarts.
    Crash,
}

/// Which faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Crashes and restarts (with unsynced writes lost and torn).
    pub crash: bool,
    /// Power cuts in the middle of a commit.
    pub power: bool,
    /// Failing `fdatasync`.
    pub sync: bool,
    /// Flipped bits on read.
    pub flip: bool,
    /// sled's failpoints.
    pub sled: bool,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults {
        crash: true,
        power: true,
        sync: true,
        flip: true,
        sled: true,
    };
    /// None: the workload alone.
    pub const NONE: Faults = Faults {
        crash: false,
        power: false,
        sync: false,
        flip: false,
        sled: false,
    };

    /// Parses `all`, `none` or a comma list of `crash,power,sync,flip,sled`.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Faults, String> {
        match s {
            "all" => return Ok(Faults::ALL),
            "none" => return Ok(Faults::NONE),
            _ => {}
        }
        let mut f = Faults::NONE;
        for name in s.split(',') {
            match name.trim() {
                "crash" => f.crash = true,
                "power" => f.power = true,
                "sync" => f.sync = true,
                "flip" => f.flip = true,
                "sled" => f.sled = true,
                other => {
                    return Err(format!(
                        "--faults: unknown fault {other:?} (crash, power, sync, flip, sled, all, none)"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// The list form [`Faults::parse`] reads.
    pub fn name(&self) -> String {
        let names: Vec<&str> = [
            (self.crash, "crash"),
            (self.power, "power"),
            (self.sync, "sync"),
            (self.flip, "flip"),
            (self.sled, "sled"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

fn party(rng: &mut Rng) -> Party {
    match rng.below(10) {
        0 | 1 => Party::Other,
        2 => Party::Stranger,
        _ => Party::Right,
    }
}

fn password(rng: &mut Rng) -> Password {
    match rng.below(20) {
        0 => Password::Wrong,
        1 => Password::Stale,
        _ => Password::Right,
    }
}

fn act(rng: &mut Rng) -> Act {
    let r = |rng: &mut Rng, n: u64| u16::try_from(rng.below(n)).unwrap_or(0);
    match rng.below(100) {
        0..=3 => Act::Deposit {
            amount: 100 + u32::try_from(rng.below(5_000)).unwrap_or(0),
            bad: u8::try_from(rng.below(12)).unwrap_or(0),
        },
        4 => Act::Withdraw {
            amount: u32::try_from(rng.below(3_000)).unwrap_or(0),
        },
        5 => Act::BindMethod,
        6 => Act::SetPassword,
        7..=15 => Act::Publish {
            price: u8::try_from(rng.below(30)).unwrap_or(0),
            total: 5 + u32::try_from(rng.below(120)).unwrap_or(0),
            window_s: (rng.below(4) == 0).then(|| 60 + r(rng, 1_800)),
            password: password(rng),
        },
        16 => Act::Pause {
            listing: r(rng, 64),
            party: party(rng),
        },
        17 => Act::Resume {
            listing: r(rng, 64),
            party: party(rng),
        },
        18 => Act::CancelListing {
            listing: r(rng, 64),
            party: party(rng),
        },
        19..=34 => Act::Buy {
            coin: match rng.below(30) {
                0 => 0,
                1 => 60_000,
                _ => 1 + r(rng, 12),
            },
            rest: rng.below(6) == 0,
            max_price: (rng.below(5) == 0).then(|| u8::try_from(rng.below(30)).unwrap_or(0)),
        },
        35 => Act::CancelBuy {
            order: r(rng, 16),
            party: party(rng),
        },
        36 => match rng.below(8) {
            0 => Act::BecomeMerchant,
            1 => Act::BindChannel,
            2 => Act::ReferencePrice {
                price: u8::try_from(rng.below(30)).unwrap_or(0),
            },
            3 => Act::PublishFloating {
                premium_bps: i16::try_from(rng.below(600)).unwrap_or(0) - 300,
                total: 5 + u32::try_from(rng.below(80)).unwrap_or(0),
            },
            4 => Act::Block {
                other: r(rng, 3_000),
                unblock: rng.below(2) == 0,
            },
            5 => Act::RemoveMethod,
            _ => Act::GatewayPay {
                trade: r(rng, 8),
                right_amount: rng.below(6) != 0,
                repeat: rng.below(8) == 0,
            },
        },
        37..=39 => Act::FastSell {
            coin: 1 + r(rng, 10),
            password: password(rng),
        },
        _ => {
            let action = match rng.below(40) {
                0..=11 => TradeAct::MarkPaid,
                12..=14 => TradeAct::Cancel,
                15..=26 => TradeAct::Release(password(rng)),
                27..=30 => TradeAct::Appeal,
                31 => TradeAct::Evidence,
                32 => TradeAct::Chat,
                33 | 34 => TradeAct::Claim,
                35 => TradeAct::Unclaim,
                _ => TradeAct::Resolve {
                    release: rng.below(2) == 0,
                    note: rng.below(8) != 0,
                },
            };
            Act::Trade {
                // Mostly recent trades (ranked from the newest).
                trade: if rng.below(3) == 0 {
                    r(rng, 400)
                } else {
                    r(rng, 8)
                },
                party: party(rng),
                action,
            }
        }
    }
}

/// The plan of seed `seed`: `steps` steps, faults from `faults`.
pub fn generate(seed: u64, steps: usize, faults: Faults) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    // Most seeds crowd a few users into each other's trades; one in four
    // spreads the load over thousands.
    let users = if rng.below(4) == 0 {
        200 + rng.below(2_800)
    } else {
        4 + rng.below(20)
    };
    let mut plan = Vec::with_capacity(steps);
    // Everyone starts with coin, a method and a password: at once when they
    // are few, before their first step when they are many.
    let setup = |plan: &mut Vec<Step>, user: u16| {
        for act in [
            Act::Deposit {
                amount: 10_000,
                bad: 0,
            },
            Act::BindMethod,
            Act::SetPassword,
        ] {
            plan.push(Step::Request { user, act });
        }
    };
    let mut ready = vec![users < 100; usize::try_from(users).unwrap_or(0)];
    if users < 100 {
        for u in 0..users {
            setup(&mut plan, u16::try_from(u).unwrap_or(0));
        }
        plan.push(Step::Commit);
    }
    let group = 1 + rng.below(12);
    while plan.len() < steps {
        let user = u16::try_from(rng.below(users)).unwrap_or(0);
        if let Some(r) = ready.get_mut(usize::from(user))
            && !*r
        {
            *r = true;
            setup(&mut plan, user);
        }
        let step = match rng.below(1_000) {
            0..=649 => Step::Request {
                user,
                act: act(&mut rng),
            },
            650..=679 => Step::Retry(u32::try_from(rng.below(1 << 16)).unwrap_or(0)),
            680..=684 => Step::Reuse(u32::try_from(rng.below(1 << 16)).unwrap_or(0)),
            685..=799 => Step::Advance(match rng.below(100) {
                0..=59 => 1_000 * (1 + i64::try_from(rng.below(30)).unwrap_or(0)),
                60..=84 => 60_000 * (1 + i64::try_from(rng.below(40)).unwrap_or(0)),
                85..=96 => 3_600_000 * (1 + i64::try_from(rng.below(30)).unwrap_or(0)),
                _ => 86_400_000 * (1 + i64::try_from(rng.below(3)).unwrap_or(0)),
            }),
            800..=829 => Step::FlushSled {
                fail: faults.sled && rng.below(12) == 0,
            },
            830..=837 if faults.crash => Step::Crash,
            838..=841 if faults.power => Step::PowerOff(u8::try_from(rng.below(12)).unwrap_or(0)),
            842..=844 if faults.sync => Step::FailSync,
            845..=846 if faults.flip => Step::FlipRead,
            _ => Step::Commit,
        };
        // Groups of a seed-chosen typical size.
        if matches!(step, Step::Request { .. }) && rng.below(group) == 0 {
            plan.push(Step::Commit);
        }
        plan.push(step);
    }
    plan.push(Step::Commit);
    plan
}
