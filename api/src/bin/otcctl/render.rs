//! Output helpers shared by the commands: aligned tables, timestamps and
//! ages, the JSON builders of trades, appeals and seller records, and the
//! JSON-or-text switch.

use otc_api::proto as pb;
use serde_json::{Value, json};

/// `println!` for text meant for an agent's terminal: the line passes
/// through [`visible`], so nothing a user typed moves the cursor, hides
/// text, reorders it or starts a line of its own. (`--json` output is left
/// to the JSON encoder, which escapes control characters.)
macro_rules! outln {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", $crate::render::visible(&format!($($arg)*)))
    };
}

/// `text` with every character that controls a terminal or hides or
/// reorders text (C0 and C1 controls, line breaks included; bidi controls;
/// zero-width and filler characters) shown as a visible `⟦U+XXXX⟧`, as the
/// web console shows them.
pub fn visible(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{00ad}'
                    | '\u{061c}'
                    | '\u{115f}'
                    | '\u{1160}'
                    | '\u{180e}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{2028}'..='\u{202e}'
                    | '\u{2060}'..='\u{206f}'
                    | '\u{3164}'
                    | '\u{fe00}'..='\u{fe0f}'
                    | '\u{feff}'
                    | '\u{ffa0}'
                    | '\u{e0000}'..='\u{e007f}'
            )
    };
    if !text.chars().any(hidden) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("⟦U+{:04X}⟧", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or empty.
pub fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Time since `t`, as `42s`, `17m` or `5h`, or empty.
pub fn age(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return String::new() };
    let secs = chrono::Utc::now().timestamp() - t.seconds;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// Prints rows as an aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| visible(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r);
    }
}

/// A seller record as JSON.
pub fn record_json(r: &pb::SellerRecord) -> Value {
    json!({"completed_30d": r.completed_30d, "completion_rate_30d": r.completion_rate_30d, "median_release_secs": r.median_release_secs})
}

/// A seller record as one line of text, or empty.
pub fn record_text(r: Option<&pb::SellerRecord>) -> String {
    r.map_or_else(String::new, |r| {
        let rate = if r.completion_rate_30d.is_empty() {
            "-".to_owned()
        } else {
            r.completion_rate_30d.clone()
        };
        format!(
            "{} completed in 30 days, completion rate {rate}, median release {} s",
            r.completed_30d, r.median_release_secs
        )
    })
}

/// An appeal as JSON (with the records and the evidence).
pub fn appeal_json(a: &pb::Appeal) -> Value {
    json!({
        "trade_id": a.trade_id,
        "status": pb::AppealStatus::try_from(a.status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN"),
        "opened_by": a.opened_by,
        "reason": a.reason,
        "opened_at": ts(a.opened_at.as_ref()),
        "claimed_by": a.claimed_by,
        "asset": a.asset,
        "coin_amount": a.coin_amount,
        "fiat_amount": a.fiat_amount,
        "seller_id": a.seller_id,
        "buyer_id": a.buyer_id,
        "outcome": a.outcome,
        "seller_record": a.seller_record.as_ref().map(record_json),
        "buyer_record": a.buyer_record.as_ref().map(record_json),
        "evidence": a.evidence.iter().map(|e| json!({
            "id": e.id,
            "by": e.by_user_id,
            "at": ts(e.at.as_ref()),
            "description": e.description,
            "file": e.attachment.as_ref().map(|f| json!({"name": f.file_name, "type": f.content_type, "bytes": f.size_bytes})),
        })).collect::<Vec<_>>(),
    })
}

/// A trade as JSON (with the receiving method and the timeline).
pub fn trade_json(t: &pb::Trade) -> Value {
    let m = t.seller_method.clone().unwrap_or_default();
    json!({
        "id": t.id,
        "state": pb::TradeState::try_from(t.state).map(|s| s.as_str_name()).unwrap_or("UNKNOWN"),
        "seller_id": t.seller_id,
        "buyer_id": t.buyer_id,
        "listing_id": t.listing_id,
        "asset": t.asset,
        "fiat": t.fiat,
        "price": t.price,
        "coin_amount": t.coin_amount,
        "fiat_amount": t.fiat_amount,
        "cancel_reason": t.cancel_reason,
        "created_at": ts(t.created_at.as_ref()),
        "paid_at": ts(t.paid_at.as_ref()),
        "seller_method": {"id": m.id, "kind": pb::PaymentKind::try_from(m.kind).map(|k| k.as_str_name()).unwrap_or(""), "holder": m.holder, "bank": m.bank, "account": m.account},
        "timeline": t.timeline.iter().map(|e| json!({"at": ts(e.at.as_ref()), "actor": e.actor, "what": e.what})).collect::<Vec<_>>(),
    })
}

/// Prints a trade: its terms, parties, receiving method and timeline.
pub fn print_trade(t: &pb::Trade) {
    let j = trade_json(t);
    outln!(
        "trade {}  {}  {} {} at {} = {} {}",
        t.id,
        j["state"].as_str().unwrap_or(""),
        t.coin_amount,
        t.asset,
        t.price,
        t.fiat_amount,
        t.fiat
    );
    outln!("seller {}  buyer {}", t.seller_id, t.buyer_id);
    if let Some(m) = &t.seller_method {
        outln!(
            "receiving method (as the buyer saw it): {} {} {} {}",
            j["seller_method"]["kind"].as_str().unwrap_or(""),
            m.holder,
            m.bank,
            m.account
        );
    }
    let rows: Vec<Vec<String>> = t
        .timeline
        .iter()
        .map(|e| vec![ts(e.at.as_ref()), e.actor.clone(), e.what.clone()])
        .collect();
    table(&["AT", "ACTOR", "WHAT"], &rows);
}

/// Prints `value` under `--json`, else `text`.
pub fn print_json_or(json: bool, value: Value, text: String) {
    if json {
        println!("{value}");
    } else {
        outln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn what_moves_hides_or_reorders_text_is_shown() {
        assert_eq!(visible("王芳 wang@example.com"), "王芳 wang@example.com");
        assert_eq!(visible("a\nb\tc"), "a⟦U+000A⟧b⟦U+0009⟧c");
        assert_eq!(visible("\u{1b}[2K"), "⟦U+001B⟧[2K");
        assert_eq!(visible("\u{202E}4321"), "⟦U+202E⟧4321");
        assert_eq!(visible("a\u{200B}b\u{E0041}"), "a⟦U+200B⟧b⟦U+E0041⟧");
    }
}
