//! Steps the console's browser tests share: the server's windows and a
//! trade ready to appeal.

use otc_api::auth::Role;
use otc_api::proto::trading_service_client::TradingServiceClient;
use uuid::Uuid;

use super::steps::*;
use super::{Authed, Server, wait_ms};

/// Windows of these tests: appeals open after 2 s; the system does not
/// appeal on its own while a browser is starting.
pub const WINDOWS: &[&str] = &["--auto-appeal-after", "10m"];

/// A paid trade (bought by `buyer_id`) whose appeal window has passed:
/// (seller, buyer, trade).
pub async fn paid_trade(
    s: &Server,
    buyer_id: Uuid,
) -> (
    TradingServiceClient<Authed>,
    TradingServiceClient<Authed>,
    String,
) {
    let (mut seller, method) = seller(s, Uuid::new_v4(), "10").await;
    let mut terms = listing(&method, "7.05", "10", "7", "700", 0);
    terms.terms = "<b>bold terms</b> 仅限支付宝".into();
    publish(&mut seller, terms).await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let trade = bought(&mut buyer, "3").await;
    mark_paid(&mut buyer, &trade).await;
    wait_ms(2_100).await;
    (seller, buyer, trade)
}
