//! Gateways' daily trade bills (对账单, SPEC §20), read as a stream of
//! [`BillRow`]s for reconciliation.
//!
//! ```text
//! BillReader::new(format, input, max_bytes)
//!   .of_account(channel.bill_account())   (optional: whose bill it must be)
//! reader.next_row()  -> Ok(Some(BillRow)) … Ok(None) | Err(BillError)
//! reader.digest()    -> SHA-256 of the bytes read (after Ok(None): of the file)
//! ```
//!
//! The reader holds one line at a time, in reused buffers: memory is bounded
//! by [`LINE_BYTES_MAX`] whatever the size of the bill. Columns are found by
//! their header name, so columns may come in any order and columns the reader
//! does not need are ignored; a missing required column is refused, naming
//! it. A bill is refused at its first bad line: the caller imports it whole
//! or not at all. Errors name the line and the column and quote at most
//! [`ECHO_CHARS_MAX`] characters of the bill.
//!
//! ## Formats
//!
//! - **Alipay** trade bill (业务明细, `alipay.data.dataservice.bill.downloadurl.query`,
//!   `bill_type=trade`): GBK, or UTF-8 when the file starts with a BOM.
//!   Lines starting with `#` are comments; the first other line is the
//!   header. Read: 支付宝交易号, 商户订单号, 业务类型 (`交易` = paid, `退款` =
//!   refund), 创建时间 and 完成时间 (the row's time: 完成时间 when present),
//!   订单金额（元） (a refund's may be negative; the row holds its magnitude),
//!   服务费（元）. The bill must reach its `#…业务明细列表结束…` line, after
//!   which only `#` comments (its totals) and blank lines may follow: a row
//!   there (two bills joined) refuses the bill. A bill without it is
//!   truncated.
//! - **WeChat Pay** trade bill (`tradebill`, `bill_type=ALL`): UTF-8, an
//!   optional BOM; every data cell starts with a backtick, dropped. Read:
//!   交易时间, 微信订单号, 商户订单号, 交易状态 (`SUCCESS` = paid, `REFUND` =
//!   refund, `CLOSED`/`REVOKED` = closed), 应结订单金额 (what the merchant
//!   is settled: 订单金额 less merchant-funded coupons, so a payment settled
//!   short of the notification's `amount.total` is an amount mismatch, and
//!   `0.00`, an order wholly paid by such coupons, is read as one too),
//!   退款金额 (a refund row's amount; a bill of type
//!   `SUCCESS` has no such column and no refund rows), 手续费. The rows end
//!   at the summary header (`总交易单数,…`) and its one data line; a bill
//!   without them is truncated.
//! - **hmac** channel CSV, below.
//!
//! A bill of another account is refused where the bill names its account:
//! Alipay's `#账号：[…]` comment must start with the channel's seller id
//! (PID); WeChat Pay's 商户号 cells, when not empty, must be the channel's
//! `mchid` (its 公众账号ID is not checked: one merchant may take payments
//! through several apps, and the bill lists them all).
//!
//! Local times (Alipay, WeChat Pay) are Beijing time.
//! Amounts have at most 2 decimal places. Fees may have up to
//! [`FEE_SCALE_MAX`](crate::amount::FEE_SCALE_MAX) (WeChat Pay prints
//! `0.08400`), and for Alipay and WeChat Pay the row holds the magnitude of
//! the fee cell: a fee returned with a refund is printed negative.
//!
//! ## The hmac channel's bill
//!
//! ```text
//! # A daily bill of an hmac channel. Lines starting with '#' are comments.
//! id,reference,amount,fee,status,paid_at
//! pay_0001,otc-7f3a9c,100.00,0.60,paid,2026-12-01T10:00:00+08:00
//! pay_0002,otc-81b2d4,20.00,0,refund,2026-12-01T03:30:00Z
//! pay_0003,otc-0c55e1,5.5,0.00,closed,2026-12-01T23:59:59+08:00
//! ```
//!
//! - UTF-8 (a leading BOM is allowed); lines end with `\n` or `\r\n`; blank
//!   lines and lines starting with `#` are skipped.
//! - Cells are separated by `,`. A cell may be double-quoted, with `""` for a
//!   quote inside it; a quoted cell cannot span lines. Spaces and tabs around
//!   a cell are ignored.
//! - The first line that is not blank or a comment is the header. It names
//!   the six columns `id`, `reference`, `amount`, `fee`, `status`, `paid_at`
//!   in any order; other columns are ignored. Every data line has as many
//!   cells as the header.
//! - `id`: the processor's transaction id, the `id` of its webhooks; 1–64
//!   bytes, no control characters.
//! - `reference`: our payment reference, as in the webhooks; 1–64 bytes.
//! - `amount`: yuan as plain decimal text (digits, optionally `.` and 1–2
//!   digits), positive; for a refund, the amount refunded. No sign, no
//!   exponent, no thousands separator.
//! - `fee`: yuan, the same form; may be `0`.
//! - `status`: `paid`, `refund` or `closed`.
//! - `paid_at`: when it happened, RFC 3339 with an offset
//!   (`2026-12-01T10:00:00+08:00`, `2026-12-01T02:00:00Z`).

mod formats;
mod lines;
mod synthetic;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_formats;

use std::fmt;
use std::io::BufRead;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::notification::Provider;
use formats::Layout;
use lines::{Cells, Decoder, Encoding, LineSource};

pub use lines::LINE_BYTES_MAX;
pub use synthetic::synthetic_hmac_bill;

/// Most characters of the bill an error quotes.
pub const ECHO_CHARS_MAX: usize = 64;
/// The Alipay comment that ends the rows.
const ALIPAY_END_MARK: &str = "业务明细列表结束";
/// The first cell of WeChat Pay's summary header.
const WECHAT_SUMMARY_MARK: &str = "总交易单数";

/// Which gateway's bill layout a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillFormat {
    /// Alipay's trade bill (业务明细), GBK CSV.
    Alipay,
    /// WeChat Pay's trade bill (`tradebill`, type ALL), backtick cells.
    WeChatPay,
    /// The hmac channel's CSV, documented in this module.
    Hmac,
}

/// The bill format of a provider's channels.
pub fn format_of(provider: Provider) -> BillFormat {
    match provider {
        Provider::Alipay => BillFormat::Alipay,
        Provider::WeChatPay => BillFormat::WeChatPay,
        Provider::Hmac => BillFormat::Hmac,
    }
}

impl From<Provider> for BillFormat {
    fn from(provider: Provider) -> Self {
        format_of(provider)
    }
}

/// Whose bill a channel reads: the id its bills must name where they name
/// one (see the module's documentation). `None` checks nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillAccount {
    /// Alipay: the seller id (PID) its 账号 starts with; WeChat Pay: the
    /// 商户号 (`mchid`).
    pub merchant: Option<String>,
}

/// What a bill row says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowStatus {
    /// Paid (Alipay 交易, WeChat `SUCCESS`, hmac `paid`).
    Paid,
    /// Refunded (Alipay 退款, WeChat `REFUND`, hmac `refund`).
    Refund,
    /// Closed or revoked without payment (WeChat `CLOSED`/`REVOKED`, hmac
    /// `closed`).
    Closed,
}

/// One transaction of a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// 1-based line number in the file, for errors and CS.
    pub line: u64,
    /// The provider's transaction id (支付宝交易号, 微信订单号, hmac `id`):
    /// what a verified notification's `txn_id` holds.
    pub txn_id: String,
    /// Our payment reference (商户订单号, hmac `reference`).
    pub reference: String,
    /// Yuan, exact: the order amount, or for a refund the amount refunded.
    /// Zero or positive: a row may settle `0.00` (a merchant-funded coupon
    /// covered the whole order), which the matcher reports as a mismatch.
    pub amount: Decimal,
    /// The gateway's fee in yuan, exact, zero or positive.
    pub fee: Decimal,
    /// What happened.
    pub status: RowStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Why a bill was refused: the line, the column when one is to blame, and
/// what is wrong. Never holds more than [`ECHO_CHARS_MAX`] characters of the
/// bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillError {
    /// 1-based line number (the last line read when the bill ends early).
    pub line: u64,
    /// The header name of the column, when one cell is to blame.
    pub column: Option<String>,
    /// What is wrong.
    pub why: String,
}

impl BillError {
    /// An error about line `line` as a whole.
    fn at(line: u64, why: impl Into<String>) -> Self {
        BillError {
            line,
            column: None,
            why: why.into(),
        }
    }

    /// An error about the cell of column `column` on line `line`.
    fn in_column(line: u64, column: &str, why: impl Into<String>) -> Self {
        BillError {
            line,
            column: Some(column.to_owned()),
            why: why.into(),
        }
    }
}

impl fmt::Display for BillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.why),
            None => write!(f, "line {}: {}", self.line, self.why),
        }
    }
}

impl std::error::Error for BillError {}

/// Text from the bill made safe to put in an error: at most
/// [`ECHO_CHARS_MAX`] characters, control characters replaced.
fn echo(text: &str) -> String {
    text.chars()
        .take(ECHO_CHARS_MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Where the reader is in the bill.
enum Phase {
    /// Before the header line.
    Header,
    /// Reading rows, with the columns the header named.
    Rows(Box<Layout>),
    /// After WeChat Pay's summary header, before its data line.
    SummaryData,
    /// After the rows: the rest is read (for the digest) but not parsed.
    Trailer,
}

/// Reads a bill one line at a time and yields its rows.
pub struct BillReader<R> {
    /// The layout the file must have.
    format: BillFormat,
    /// Whose bill it must be.
    account: BillAccount,
    /// Bounded, hashed lines.
    source: LineSource<R>,
    /// Bytes to text.
    decoder: Decoder,
    /// The current line's cells.
    cells: Cells,
    /// Where the reader is.
    phase: Phase,
    /// The error that refused the bill; every later call returns it again.
    failed: Option<BillError>,
}

impl<R: BufRead> BillReader<R> {
    /// A reader of a bill in `format` from `input` (Alipay's and WeChat
    /// Pay's local times are Beijing time, whatever time zone the channel's
    /// bill days are in), refusing the bill past `max_bytes` bytes
    /// (every byte counts: BOM, comments, line endings).
    pub fn new(format: BillFormat, input: R, max_bytes: u64) -> Self {
        let encoding = match format {
            BillFormat::Alipay => Encoding::Gbk,
            BillFormat::WeChatPay | BillFormat::Hmac => Encoding::Utf8,
        };
        BillReader {
            format,
            account: BillAccount::default(),
            source: LineSource::new(input, max_bytes),
            decoder: Decoder::new(encoding),
            cells: Cells::default(),
            phase: Phase::Header,
            failed: None,
        }
    }

    /// Refuses a bill that names another account than `account`.
    #[must_use]
    pub fn of_account(mut self, account: BillAccount) -> Self {
        self.account = account;
        self
    }

    /// The next row, or `None` after the last one. Skips blank lines,
    /// comments and summaries.
    ///
    /// # Errors
    /// The first problem in the bill: a read error, a size limit, bad text,
    /// a missing column, a malformed cell, a truncated bill. The reader stays
    /// failed: later calls return the same error.
    pub fn next_row(&mut self) -> Result<Option<BillRow>, BillError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// SHA-256 of every byte read so far; once [`BillReader::next_row`] has
    /// returned `Ok(None)`, of the whole file. The same bill imported twice
    /// has the same digest.
    pub fn digest(&self) -> [u8; 32] {
        self.source.digest()
    }

    /// Reads lines until one is a row or the bill ends. Each turn of the loop
    /// consumes a line, so the input bounds it.
    fn advance(&mut self) -> Result<Option<BillRow>, BillError> {
        loop {
            let Some((line, raw)) = self.source.next_line()? else {
                return self.at_end();
            };
            // After the end, Alipay's bill has its summary comments and
            // WeChat Pay's nothing but blank lines (below).
            if matches!(self.phase, Phase::Trailer) && self.format == BillFormat::Hmac {
                continue;
            }
            let text = self.decoder.decode(raw, line)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                continue;
            }
            if self.format != BillFormat::WeChatPay && trimmed.starts_with('#') {
                if self.format == BillFormat::Alipay && matches!(self.phase, Phase::Header) {
                    check_alipay_account(trimmed, &self.account, line)?;
                }
                if self.format == BillFormat::Alipay
                    && matches!(self.phase, Phase::Rows(_))
                    && trimmed.contains(ALIPAY_END_MARK)
                {
                    self.phase = Phase::Trailer;
                }
                continue;
            }
            let strip_backtick = self.format == BillFormat::WeChatPay;
            self.cells
                .split(text, strip_backtick)
                .map_err(|why| BillError::at(line, why))?;
            match &self.phase {
                Phase::Header => {
                    let layout =
                        Layout::from_header(self.format, &self.cells, line, &self.account)?;
                    self.phase = Phase::Rows(Box::new(layout));
                }
                Phase::Rows(layout) => {
                    if self.format == BillFormat::WeChatPay
                        && self.cells.get(0).starts_with(WECHAT_SUMMARY_MARK)
                    {
                        self.phase = Phase::SummaryData;
                        continue;
                    }
                    return layout.row(&self.cells, line).map(Some);
                }
                // WeChat Pay's bill ends with its summary's data line, and
                // Alipay's rows with its end mark: rows after them (two bills
                // joined) would be hashed but never read.
                Phase::Trailer if self.format == BillFormat::WeChatPay => {
                    return Err(BillError::at(
                        line,
                        "a line after the bill's 总交易单数 summary: one bill per file",
                    ));
                }
                Phase::Trailer if self.format == BillFormat::Alipay => {
                    return Err(BillError::at(
                        line,
                        "a line after the bill's 业务明细列表结束 line that is not a # comment: one bill per file",
                    ));
                }
                Phase::SummaryData | Phase::Trailer => self.phase = Phase::Trailer,
            }
        }
    }

    /// What the end of the input means where the reader is.
    fn at_end(&self) -> Result<Option<BillRow>, BillError> {
        let line = self.source.line();
        let truncated = match (&self.phase, self.format) {
            (Phase::Trailer, _) | (Phase::Rows(_), BillFormat::Hmac) => return Ok(None),
            // No line at all: named as its first, the header it lacks.
            (Phase::Header, _) if line == 0 => {
                return Err(BillError::at(1, "the bill is empty: no header line"));
            }
            (Phase::Header, _) => "the bill ends before its header line",
            (Phase::Rows(_), BillFormat::Alipay) => {
                "the bill ends without its 业务明细列表结束 line: it is truncated"
            }
            (Phase::Rows(_), BillFormat::WeChatPay) => {
                "the bill ends without its 总交易单数 summary: it is truncated"
            }
            (Phase::SummaryData, _) => "the bill ends inside its summary: it is truncated",
        };
        Err(BillError::at(line, truncated))
    }
}

/// Refuses an Alipay comment `#账号：[…]` naming an account that does not
/// start with the expected seller id; any other comment passes.
fn check_alipay_account(comment: &str, account: &BillAccount, line: u64) -> Result<(), BillError> {
    let (Some(pid), Some(named)) = (&account.merchant, alipay_account(comment)) else {
        return Ok(());
    };
    if named.starts_with(pid.as_str()) {
        return Ok(());
    }
    let why = format!("`{}` is not this channel's (seller id {pid})", echo(named));
    Err(BillError::in_column(line, "账号", why))
}

/// The account an Alipay `#账号：[…]` comment names.
fn alipay_account(comment: &str) -> Option<&str> {
    let rest = comment
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("账号")?;
    let rest = rest.strip_prefix('：').or_else(|| rest.strip_prefix(':'))?;
    let rest = rest.trim_start().strip_prefix('[')?;
    rest.split_once(']').map(|(named, _)| named.trim())
}

impl<R: BufRead> Iterator for BillReader<R> {
    type Item = Result<BillRow, BillError>;

    /// The next row; after an error, `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed.is_some() {
            return None;
        }
        self.next_row().transpose()
    }
}
