//! The three bill layouts: which header names the reader needs, and how a
//! row's cells become a [`BillRow`].

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Shanghai as BEIJING;
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::lines::Cells;
use super::{BillAccount, BillError, BillFormat, BillRow, RowStatus, echo};
use crate::amount::{parse_fee_yuan, parse_yuan_or_zero};
use crate::refusal::Refusal;
use crate::wire::{gateway_id, parse_local_time, parse_rfc3339};

/// A column found in the header: its index, and its name for errors.
#[derive(Debug, Clone, Copy)]
struct Col {
    /// Index of the cell in every line.
    at: usize,
    /// The header name.
    name: &'static str,
}

/// The columns of a bill, found in its header.
pub(super) struct Layout {
    /// How many cells the header has, and so every row.
    width: usize,
    /// Where the needed columns are.
    columns: Columns,
}

/// The needed columns of each format.
enum Columns {
    Alipay(AlipayColumns),
    WeChat(WeChatColumns),
    Hmac(HmacColumns),
}

struct AlipayColumns {
    txn_id: Col,
    reference: Col,
    kind: Col,
    created: Col,
    /// 完成时间, preferred to 创建时间 when the cell is not empty.
    finished: Option<Col>,
    amount: Col,
    fee: Col,
}

struct WeChatColumns {
    time: Col,
    txn_id: Col,
    reference: Col,
    status: Col,
    /// 应结订单金额: what the merchant is settled, the amount matched. It is
    /// 订单金额 less merchant-funded coupons, so a payment settled short of
    /// its notified total shows as a mismatch rather than hiding.
    settled: Col,
    /// 退款金额: needed only by refund rows (a `SUCCESS` bill has none).
    refund: Option<Col>,
    fee: Col,
    /// 商户号 and the `mchid` it must hold, when both are known.
    mchid: Option<(Col, String)>,
}

struct HmacColumns {
    id: Col,
    reference: Col,
    amount: Col,
    fee: Col,
    status: Col,
    paid_at: Col,
}

impl Layout {
    /// Finds the columns `format` needs in the header line `cells`.
    ///
    /// # Errors
    /// A needed column is missing, or named twice.
    pub(super) fn from_header(
        format: BillFormat,
        cells: &Cells,
        line: u64,
        account: &BillAccount,
    ) -> Result<Layout, BillError> {
        let header = Header { cells, line };
        let columns = match format {
            BillFormat::Alipay => Columns::Alipay(AlipayColumns {
                txn_id: header.required("支付宝交易号")?,
                reference: header.required("商户订单号")?,
                kind: header.required("业务类型")?,
                created: header.required("创建时间")?,
                finished: header.optional("完成时间")?,
                amount: header.required("订单金额（元）")?,
                fee: header.required("服务费（元）")?,
            }),
            BillFormat::WeChatPay => Columns::WeChat(WeChatColumns {
                time: header.required("交易时间")?,
                txn_id: header.required("微信订单号")?,
                reference: header.required("商户订单号")?,
                status: header.required("交易状态")?,
                settled: header.required("应结订单金额")?,
                refund: header.optional("退款金额")?,
                fee: header.required("手续费")?,
                mchid: header.expecting("商户号", account.merchant.as_ref())?,
            }),
            BillFormat::Hmac => Columns::Hmac(HmacColumns {
                id: header.required("id")?,
                reference: header.required("reference")?,
                amount: header.required("amount")?,
                fee: header.required("fee")?,
                status: header.required("status")?,
                paid_at: header.required("paid_at")?,
            }),
        };
        Ok(Layout {
            width: cells.len(),
            columns,
        })
    }

    /// Parses the data line `cells`.
    ///
    /// # Errors
    /// A cell count unlike the header's, an empty or malformed cell.
    pub(super) fn row(&self, cells: &Cells, line: u64) -> Result<BillRow, BillError> {
        if cells.len() != self.width {
            let why = format!("{} cells where the header has {}", cells.len(), self.width);
            return Err(BillError::at(line, why));
        }
        let row = Row { cells, line };
        let parsed = match &self.columns {
            Columns::Alipay(columns) => alipay(&row, columns)?,
            Columns::WeChat(columns) => wechat(&row, columns)?,
            Columns::Hmac(columns) => hmac(&row, columns)?,
        };
        debug_assert!(parsed.amount >= Decimal::ZERO && parsed.fee >= Decimal::ZERO);
        Ok(parsed)
    }
}

fn alipay(row: &Row, c: &AlipayColumns) -> Result<BillRow, BillError> {
    let status = match row.text(c.kind)? {
        "交易" => RowStatus::Paid,
        "退款" => RowStatus::Refund,
        other => return Err(row.unknown(c.kind, other, "交易 or 退款")),
    };
    let amount_sign = match status {
        RowStatus::Refund => Sign::MayBeNegative,
        RowStatus::Paid | RowStatus::Closed => Sign::Unsigned,
    };
    let created = row.local_time(c.created, BEIJING)?;
    let at = match c.finished {
        Some(finished) if !row.cells.get(finished.at).is_empty() => {
            row.local_time(finished, BEIJING)?
        }
        _ => created,
    };
    Ok(BillRow {
        line: row.line,
        txn_id: row.id(c.txn_id)?,
        reference: row.id(c.reference)?,
        amount: row.amount(c.amount, amount_sign)?,
        fee: row.fee(c.fee, Sign::MayBeNegative)?,
        status,
        at,
    })
}

fn wechat(row: &Row, c: &WeChatColumns) -> Result<BillRow, BillError> {
    let status = match row.text(c.status)? {
        "SUCCESS" => RowStatus::Paid,
        "REFUND" => RowStatus::Refund,
        "CLOSED" | "REVOKED" => RowStatus::Closed,
        other => return Err(row.unknown(c.status, other, "SUCCESS, REFUND, CLOSED or REVOKED")),
    };
    if let Some((col, expected)) = &c.mchid {
        let cell = row.cells.get(col.at);
        if !cell.is_empty() && cell != expected {
            let why = format!("`{}` is not this channel's ({expected})", echo(cell));
            return Err(row.error(*col, why));
        }
    }
    let amount = match status {
        RowStatus::Refund => {
            let col = c.refund.ok_or_else(|| {
                let why = "a refund row needs this column, missing from the header";
                BillError::in_column(row.line, "退款金额", why)
            })?;
            // A refund of an order a coupon paid whole refunds 0.00 of
            // settled money (退款金额 leaves coupons out): a refund row all
            // the same, which the matcher reports whatever its amount.
            row.amount(col, Sign::Unsigned)?
        }
        // A coupon may cover the whole order: settled 0.00, a mismatch for
        // the matcher to report, not a malformed bill.
        RowStatus::Paid | RowStatus::Closed => row.amount(c.settled, Sign::Unsigned)?,
    };
    Ok(BillRow {
        line: row.line,
        txn_id: row.id(c.txn_id)?,
        reference: row.id(c.reference)?,
        amount,
        fee: row.fee(c.fee, Sign::MayBeNegative)?,
        status,
        at: row.local_time(c.time, BEIJING)?,
    })
}

fn hmac(row: &Row, c: &HmacColumns) -> Result<BillRow, BillError> {
    let status = match row.text(c.status)? {
        "paid" => RowStatus::Paid,
        "refund" => RowStatus::Refund,
        "closed" => RowStatus::Closed,
        other => return Err(row.unknown(c.status, other, "paid, refund or closed")),
    };
    Ok(BillRow {
        line: row.line,
        txn_id: row.id(c.id)?,
        reference: row.id(c.reference)?,
        amount: row.amount(c.amount, Sign::Unsigned)?,
        fee: row.fee(c.fee, Sign::Unsigned)?,
        status,
        at: row.rfc3339(c.paid_at)?,
    })
}

/// The header line, to find columns in.
struct Header<'a> {
    cells: &'a Cells,
    line: u64,
}

impl Header<'_> {
    /// The column named `name`, if the header has it.
    fn optional(&self, name: &'static str) -> Result<Option<Col>, BillError> {
        let mut found = (0..self.cells.len()).filter(|&at| same_name(self.cells.get(at), name));
        let first = found.next();
        if found.next().is_some() {
            let why = "the column is named twice in the header";
            return Err(BillError::in_column(self.line, name, why));
        }
        Ok(first.map(|at| Col { at, name }))
    }

    /// The column named `name` with the value its cells must hold, when
    /// the header has it and the value is known.
    fn expecting(
        &self,
        name: &'static str,
        expected: Option<&String>,
    ) -> Result<Option<(Col, String)>, BillError> {
        let Some(expected) = expected else {
            return Ok(None);
        };
        Ok(self.optional(name)?.map(|col| (col, expected.clone())))
    }

    /// The column named `name`.
    fn required(&self, name: &'static str) -> Result<Col, BillError> {
        self.optional(name)?.ok_or_else(|| {
            let why = "a required column is missing from the header";
            BillError::in_column(self.line, name, why)
        })
    }
}

/// Whether header cell `cell` names `name`, reading ASCII parentheses as the
/// full-width ones Alipay uses.
fn same_name(cell: &str, name: &str) -> bool {
    let full_width = |c| match c {
        '(' => '（',
        ')' => '）',
        c => c,
    };
    cell.chars().map(full_width).eq(name.chars())
}

/// Whether an amount cell may carry a leading `-` (dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    /// Plain digits only.
    Unsigned,
    /// A leading `-` is allowed: the magnitude is read.
    MayBeNegative,
}

/// A data line, to read cells from.
struct Row<'a> {
    cells: &'a Cells,
    line: u64,
}

impl<'a> Row<'a> {
    fn error(&self, col: Col, why: impl Into<String>) -> BillError {
        BillError::in_column(self.line, col.name, why)
    }

    /// The error for a refusal from the shared parsers, naming `col`.
    fn refused(&self, col: Col, refusal: Refusal) -> BillError {
        match refusal {
            Refusal::Malformed { why, .. } => self.error(col, why),
            other => self.error(col, other.to_string()),
        }
    }

    fn unknown(&self, col: Col, text: &str, expected: &str) -> BillError {
        self.error(col, format!("`{}` is not {expected}", echo(text)))
    }

    /// The cell of `col`, which must not be empty.
    fn text(&self, col: Col) -> Result<&'a str, BillError> {
        match self.cells.get(col.at) {
            "" => Err(self.error(col, "empty")),
            text => Ok(text),
        }
    }

    fn id(&self, col: Col) -> Result<String, BillError> {
        gateway_id(col.name, self.text(col)?).map_err(|r| self.refused(col, r))
    }

    /// An amount, zero or positive: a line settled at 0.00 (an order paid
    /// wholly by coupons, as a signed notification may state it too) is a
    /// mismatch for the matcher to report, not a malformed bill.
    fn amount(&self, col: Col, sign: Sign) -> Result<Decimal, BillError> {
        let text = unsigned(self.text(col)?, sign);
        parse_yuan_or_zero(col.name, text).map_err(|r| self.refused(col, r))
    }

    /// A fee: zero or positive.
    fn fee(&self, col: Col, sign: Sign) -> Result<Decimal, BillError> {
        let text = unsigned(self.text(col)?, sign);
        parse_fee_yuan(col.name, text).map_err(|r| self.refused(col, r))
    }

    fn local_time(&self, col: Col, tz: Tz) -> Result<DateTime<Utc>, BillError> {
        parse_local_time(col.name, self.text(col)?, tz).map_err(|r| self.refused(col, r))
    }

    fn rfc3339(&self, col: Col) -> Result<DateTime<Utc>, BillError> {
        parse_rfc3339(col.name, self.text(col)?).map_err(|r| self.refused(col, r))
    }
}

/// `text` without the one leading `-` that `sign` allows.
fn unsigned(text: &str, sign: Sign) -> &str {
    match sign {
        Sign::MayBeNegative => text.strip_prefix('-').unwrap_or(text),
        Sign::Unsigned => text,
    }
}
