//! A seeded random walk: ~20,000 commands from honest and hostile users,
//! time jumping by milliseconds to days, fed to the real engine and the
//! model. The model must agree with the engine on every step.

#[path = "model/mod.rs"]
mod common;
#[path = "model/driver.rs"]
mod driver;

use std::collections::BTreeMap;

use driver::Driver;
use otc_engine::EngineConfig;

fn walk(seed: u64, steps: usize, config: EngineConfig) -> BTreeMap<String, u64> {
    let mut d = Driver::new(seed, config);
    d.run(seed, steps);
    d.check_counts();
    println!("seed {seed}: {:?}\n{:#?}", d.w.m.counts(), d.stats);
    d.stats
}

#[test]
fn twenty_thousand_random_commands_agree() {
    let stats = walk(0x5eed_2026, 20_000, EngineConfig::default());
    // The walk reaches every corner it is meant to.
    for key in [
        "~MarkedPaid",
        "~BuyerCancelled",
        "~PaymentTimeout",
        "~SellerReleased",
        "~AppealOpened",
        "~AutoAppealed",
        "~ResolvedRelease",
        "~ResolvedRefund",
        "~SettledBySellerRelease",
        "~BuyerWithdrewAppeal",
        "~GatewayVerified",
        "~GatewayAmountMismatch",
        "~ReleasedOnVerifiedPayment",
        "mark paid refused",
        "release refused",
        "claim appeal ok",
        "unclaim appeal ok",
    ] {
        assert!(
            stats.get(key).copied().unwrap_or(0) > 0,
            "the walk never reached {key}"
        );
    }
}

#[test]
fn short_windows_and_other_seeds_agree() {
    // Windows of seconds, as a demo would configure them (SPEC §12).
    let config = EngineConfig {
        appeal_after_ms: 3_000,
        auto_appeal_after_ms: 20_000,
        merchant_window_ms: 4_000,
        payment_window_ms_default: 6_000,
        payment_window_ms_min: 1_000,
        payment_window_ms_max: 3_600_000,
        ended_retention_ms: 10_000,
        ..EngineConfig::default()
    };
    for seed in 1..=3 {
        walk(seed, 4_000, config.clone());
    }
}

/// More seeds, for a longer hunt:
/// `cargo test -p otc-sim --test model_random -- --ignored many_seeds_agree`.
#[test]
#[ignore]
fn many_seeds_agree() {
    for seed in 100..150 {
        walk(seed, 20_000, EngineConfig::default());
    }
}
