//! The soak's checks over the API: conservation (L1) from the statement
//! and every user's account, and the size of a data dir.

use std::str::FromStr;

use otc_api::proto as pb;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::actors::admin_who;
use super::{Clients, Who, within};

/// `text` as a decimal, or what is wrong with it.
pub fn dec(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text).map_err(|e| format!("{text:?} is not a decimal: {e}"))
}

/// L1 over the API: today's statement is balanced (Σ deposits − Σ
/// withdrawals of all days = Σ balances), and Σ over every user of
/// available + escrowed is that total. Only timers run meanwhile, and they
/// move no coin between users.
pub async fn conservation(c: &mut Clients, users: &[Uuid]) -> Result<String, String> {
    let day = || chrono::Utc::now().format("%Y-%m-%d").to_string();
    let before = day();
    let mut held = Decimal::ZERO;
    for u in users {
        let acc = within(
            c.trading(Who::user(*u))
                .get_account(pb::GetAccountRequest {}),
        )
        .await
        .map_err(|s| format!("GetAccount {u}: {s:?}"))?
        .into_inner();
        for b in acc.balances.iter().filter(|b| b.asset == "EB") {
            held += dec(&b.available)? + dec(&b.escrowed)?;
        }
    }
    let st = within(
        c.support(admin_who())
            .get_statement(pb::GetStatementRequest {
                asset: "EB".into(),
                date: before.clone(),
            }),
    )
    .await
    .map_err(|s| format!("GetStatement: {s:?}"))?
    .into_inner();
    let (closing, balances) = (dec(&st.closing)?, dec(&st.balances)?);
    if !st.balanced || closing != balances {
        return Err(format!("L1: the statement is not balanced: {st:?}"));
    }
    // Across midnight the statement is of the day before: skip the sum.
    if before == day() && held != balances {
        return Err(format!(
            "L1: users hold {held} in all, the statement says {balances}: {st:?}"
        ));
    }
    Ok(format!("L1 holds: {balances} EB held"))
}

/// Bytes under `dir`.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
