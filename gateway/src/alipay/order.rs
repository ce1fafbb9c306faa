//! `alipay.trade.page.pay`: the signed URL the buyer's browser opens.
//!
//! Request signing differs from notification signing in one way: only `sign`
//! is left out (`sign_type` is signed). Values are signed raw and sent
//! form-encoded, which is what Alipay's SDKs and python-alipay-sdk do.

use serde::Serialize;

use super::AlipayAccount;
use crate::channel::{
    ORDER_SUBJECT_CHARS_MAX, ORDER_TIMEOUT_MINUTES_MAX, ORDER_URL_BYTES_MAX, OrderRequest,
};
use crate::keys::rsa2_sign;
use crate::wire::{form_encode, format_gateway_time};

/// `biz_content` of a page-pay request, fields in Alipay's documented order.
#[derive(Serialize)]
struct PagePayContent<'a> {
    out_trade_no: &'a str,
    product_code: &'static str,
    total_amount: &'a str,
    subject: &'a str,
    /// When Alipay closes the order, in Beijing time: absolute, so a URL
    /// opened late cannot be paid past the trade's window (a relative
    /// `timeout_express` would count from when the buyer opens it).
    time_expire: String,
}

impl AlipayAccount {
    /// The signed page-pay URL for `order`; `amount` is already formatted
    /// with 2 decimal places.
    pub(crate) fn page_pay_url(
        &self,
        order: &OrderRequest,
        amount: &str,
    ) -> Result<String, String> {
        check_order(order)?;
        let content = PagePayContent {
            out_trade_no: &order.reference,
            product_code: "FAST_INSTANT_TRADE_PAY",
            total_amount: amount,
            subject: &order.subject,
            time_expire: format_gateway_time(
                order.now + chrono::Duration::minutes(order.timeout_minutes),
            ),
        };
        let biz_content =
            serde_json::to_string(&content).map_err(|e| format!("biz_content: {e}"))?;
        let mut params: Vec<(&str, String)> = vec![
            ("app_id", self.app_id.clone()),
            ("method", "alipay.trade.page.pay".to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            ("timestamp", format_gateway_time(order.now)),
            ("version", "1.0".to_owned()),
            ("notify_url", order.notify_url.clone()),
            ("biz_content", biz_content),
        ];
        if !order.return_url.is_empty() {
            params.push(("return_url", order.return_url.clone()));
        }
        params.sort_by(|a, b| a.0.cmp(b.0));
        let sign = rsa2_sign(&self.app_key, signed_content(&params).as_bytes())?;
        let mut url = self.gateway_url.clone();
        url.push('?');
        for (key, value) in &params {
            url.push_str(key);
            url.push('=');
            url.push_str(&form_encode(value.as_bytes()));
            url.push('&');
        }
        url.push_str("sign=");
        url.push_str(&form_encode(sign.as_bytes()));
        Ok(url)
    }
}

/// What a request's signature covers: the sorted non-empty parameters other
/// than `sign`, as `k=v&k=v` with raw values.
pub(crate) fn signed_content<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn check_order(order: &OrderRequest) -> Result<(), String> {
    if !(1..=ORDER_TIMEOUT_MINUTES_MAX).contains(&order.timeout_minutes) {
        return Err(format!(
            "timeout_minutes must be 1 to {ORDER_TIMEOUT_MINUTES_MAX}"
        ));
    }
    let subject_chars = order.subject.chars().count();
    if subject_chars == 0
        || subject_chars > ORDER_SUBJECT_CHARS_MAX
        || order.subject.chars().any(char::is_control)
    {
        return Err(format!(
            "subject must be 1 to {ORDER_SUBJECT_CHARS_MAX} characters, none a control character"
        ));
    }
    check_url("notify_url", &order.notify_url)?;
    if !order.return_url.is_empty() {
        check_url("return_url", &order.return_url)?;
    }
    Ok(())
}

fn check_url(field: &str, url: &str) -> Result<(), String> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= ORDER_URL_BYTES_MAX
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} must be an http(s) URL of at most {ORDER_URL_BYTES_MAX} bytes"
        ))
    }
}
