//! The three formats, from fixture bills built as bytes.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use encoding_rs::GBK;
use rust_decimal::Decimal;

use super::*;

pub(super) const BYTES_MAX: u64 = 1 << 20;

pub(super) fn read_all(format: BillFormat, bytes: &[u8]) -> Result<Vec<BillRow>, BillError> {
    BillReader::new(format, bytes, BYTES_MAX).collect()
}

pub(super) fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test literal")
}

pub(super) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal")
        .with_timezone(&Utc)
}

pub(super) fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = GBK.encode(text);
    assert!(!unmappable, "fixture not encodable in GBK");
    bytes.into_owned()
}

fn with_bom(text: &str) -> Vec<u8> {
    [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()
}

fn row(
    line: u64,
    ids: (&str, &str),
    amount: &str,
    fee: &str,
    status: RowStatus,
    at: &str,
) -> BillRow {
    BillRow {
        line,
        txn_id: ids.0.to_owned(),
        reference: ids.1.to_owned(),
        amount: dec(amount),
        fee: dec(fee),
        status,
        at: utc(at),
    }
}

pub(super) const ALIPAY_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,\
完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,\
集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,\
卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

pub(super) fn alipay_header() -> Vec<&'static str> {
    ALIPAY_HEADER.split(',').collect()
}

pub(super) const ALIPAY_PAYMENT: &[(&str, &str)] = &[
    ("支付宝交易号", "2026120122001400001000000001"),
    ("商户订单号", "otc-ref-0001"),
    ("业务类型", "交易"),
    ("商品名称", "USDT 出售"),
    ("创建时间", "2026-12-01 10:00:00"),
    ("完成时间", "2026-12-01 10:00:05"),
    ("对方账户", "bu***@example.com"),
    ("订单金额（元）", "30.00"),
    ("商家实收（元）", "30.00"),
    ("服务费（元）", "0.18"),
];

const ALIPAY_REFUND: &[(&str, &str)] = &[
    ("支付宝交易号", "2026120122001400001000000001"),
    ("商户订单号", "otc-ref-0001"),
    ("业务类型", "退款"),
    ("商品名称", "USDT 出售"),
    ("创建时间", "2026-12-02 00:20:00"),
    ("完成时间", "2026-12-02 00:30:00"),
    ("订单金额（元）", "-2.00"),
    ("商家实收（元）", "-2.00"),
    ("退款批次号/请求号", "2026120200001"),
    ("服务费（元）", "-0.01"),
];

const ALIPAY_END: &str = "#-----------------------------------------业务明细列表结束------------------------------------";

/// An Alipay bill with `header` and `rows` (cells padded with a tab, as
/// Alipay does), between Alipay's comment lines, with CRLF line endings.
pub(super) fn alipay_bill(header: &[&str], rows: &[&[(&str, &str)]]) -> String {
    let mut bill = String::from(
        "#支付宝业务明细查询\r\n#账号：[20880000000000010156]\r\n\
         #起始日期：[2026年12月01日 00:00:00]   终止日期：[2026年12月02日 00:00:00]\r\n\
         #-----------------------------------------业务明细列表----------------------------------------\r\n",
    );
    bill.push_str(&header.join(","));
    bill.push_str("\r\n");
    for values in rows {
        let cells: Vec<String> = header
            .iter()
            .map(|column| {
                let column = column.replace('(', "（").replace(')', "）");
                let value = values.iter().find(|(name, _)| *name == column);
                format!("{}\t", value.map_or("", |(_, value)| *value))
            })
            .collect();
        bill.push_str(&cells.join(","));
        bill.push_str("\r\n");
    }
    bill.push_str(ALIPAY_END);
    bill.push_str("\r\n#交易合计：1笔，商家实收共：30.00元\r\n");
    bill.push_str(
        "#退款合计：1笔，商家实收共：-2.00元\r\n#导出时间：[2026年12月02日 09:00:00]\r\n",
    );
    bill
}

fn alipay_rows(payment_at: &str, refund_at: &str) -> Vec<BillRow> {
    let ids = ("2026120122001400001000000001", "otc-ref-0001");
    vec![
        row(6, ids, "30.00", "0.18", RowStatus::Paid, payment_at),
        row(7, ids, "2.00", "0.01", RowStatus::Refund, refund_at),
    ]
}

#[test]
fn alipay_gbk_bill_gives_a_payment_and_a_refund_in_utc() {
    let text = alipay_bill(&alipay_header(), &[ALIPAY_PAYMENT, ALIPAY_REFUND]);
    let bytes = gbk(&text);
    assert!(std::str::from_utf8(&bytes).is_err(), "the fixture is GBK");
    // 完成时间 in Beijing time; the refund's is just after midnight there.
    let want = alipay_rows("2026-12-01T02:00:05Z", "2026-12-01T16:30:00Z");
    assert_eq!(read_all(BillFormat::Alipay, &bytes), Ok(want));
}

#[test]
fn alipay_utf8_with_bom_parses_the_same() {
    let text = alipay_bill(&alipay_header(), &[ALIPAY_PAYMENT, ALIPAY_REFUND]);
    let want = alipay_rows("2026-12-01T02:00:05Z", "2026-12-01T16:30:00Z");
    assert_eq!(read_all(BillFormat::Alipay, &with_bom(&text)), Ok(want));
}

#[test]
fn alipay_columns_in_another_order_still_work() {
    let mut reversed = alipay_header();
    reversed.reverse();
    let text = alipay_bill(&reversed, &[ALIPAY_PAYMENT, ALIPAY_REFUND]);
    let want = alipay_rows("2026-12-01T02:00:05Z", "2026-12-01T16:30:00Z");
    assert_eq!(read_all(BillFormat::Alipay, &gbk(&text)), Ok(want));

    // Only the needed columns, ASCII parentheses, no 完成时间: 创建时间 is used.
    let minimal = [
        "服务费(元)",
        "订单金额(元)",
        "创建时间",
        "业务类型",
        "商户订单号",
        "支付宝交易号",
    ];
    let text = alipay_bill(&minimal, &[ALIPAY_PAYMENT, ALIPAY_REFUND]);
    let want = alipay_rows("2026-12-01T02:00:00Z", "2026-12-01T16:20:00Z");
    assert_eq!(read_all(BillFormat::Alipay, &gbk(&text)), Ok(want));
}

#[test]
fn alipay_missing_required_column_is_named() {
    let header: Vec<&str> = alipay_header()
        .into_iter()
        .filter(|name| *name != "订单金额（元）")
        .collect();
    let text = alipay_bill(&header, &[ALIPAY_PAYMENT]);
    let error = read_all(BillFormat::Alipay, &gbk(&text)).expect_err("no amount column");
    assert_eq!(error.line, 5);
    assert_eq!(error.column.as_deref(), Some("订单金额（元）"));
    assert_eq!(
        error.to_string(),
        "line 5, column 订单金额（元）: a required column is missing from the header"
    );
}

#[test]
fn alipay_rows_end_at_the_end_mark_and_a_bill_without_it_is_truncated() {
    let text = alipay_bill(&alipay_header(), &[ALIPAY_PAYMENT, ALIPAY_REFUND]);
    // Its totals' comments and blank lines after the mark are the bill's.
    let tail = format!("{text}\r\n#另一条注释\r\n\r\n");
    assert_eq!(
        read_all(BillFormat::Alipay, &gbk(&tail)).map(|rows| rows.len()),
        Ok(2)
    );
    // A row after it (two bills joined) would never be read: refused.
    let joined = format!("{text}{text}");
    let error = read_all(BillFormat::Alipay, &gbk(&joined)).expect_err("two bills");
    assert_eq!(
        error.line,
        text.lines().count() as u64 + 5,
        "the second header"
    );
    assert!(error.why.contains("one bill per file"), "{error}");

    let empty = read_all(BillFormat::Alipay, b"").expect_err("empty");
    assert_eq!(
        (empty.line, empty.why.as_str()),
        (1, "the bill is empty: no header line")
    );

    let end = text.find(ALIPAY_END).expect("end mark");
    let error = read_all(BillFormat::Alipay, &gbk(&text[..end])).expect_err("truncated");
    assert_eq!(error.line, 7);
    assert!(error.why.contains("truncated"), "{error}");
}

pub(super) const WECHAT_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,\
用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,\
充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

const WECHAT_SUMMARY: &str = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n\
`4,`30.00,`4.00,`0.00,`0.06000,`30.50,`4.00\r\n";

/// Payment (a 0.50 coupon: settles 13.50 of 14.00), refund, revoked, closed.
const WECHAT_ROWS: [&str; 4] = [
    "2026-12-01 10:00:00,wx2421b1c4370ec43b,1900000001,0,,4200001234202612010000000001,\
     otc-ref-0001,oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,NATIVE,SUCCESS,CMB_DEBIT,CNY,13.50,0.50,0,0,\
     0.00,0.00,,,USDT,,0.08400,0.60%,14.00,0.00,",
    "2026-12-01 23:59:59,wx2421b1c4370ec43b,1900000001,0,,4200001234202612010000000001,\
     otc-ref-0001,oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,NATIVE,REFUND,CMB_DEBIT,CNY,0.00,0.00,\
     50300001234202612010000000001,otc-refund-0001,4.00,0.00,ORIGINAL,SUCCESS,USDT,,\
     -0.02400,0.60%,0.00,4.00,",
    "2026-12-02 00:00:01,wx2421b1c4370ec43b,1900000001,0,,4200001234202612010000000002,\
     otc-ref-0002,oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,MICROPAY,REVOKED,OTHERS,CNY,8.00,0.00,0,0,\
     0.00,0.00,,,USDT,,0.00000,0.60%,8.00,0.00,",
    "2026-12-01 12:00:00,wx2421b1c4370ec43b,1900000001,0,,4200001234202612010000000003,\
     otc-ref-0003,oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,NATIVE,CLOSED,OTHERS,CNY,8.50,0.00,0,0,\
     0.00,0.00,,,USDT,,0.00000,0.60%,8.50,0.00,",
];

/// A WeChat bill of `rows` without the column `drop`, summary included.
pub(super) fn wechat_bill(drop: &str) -> String {
    let keep: Vec<bool> = WECHAT_HEADER.split(',').map(|name| name != drop).collect();
    let pick = |cells: Vec<String>| -> String {
        let kept: Vec<String> = cells
            .into_iter()
            .zip(&keep)
            .filter_map(|(cell, keep)| keep.then_some(cell))
            .collect();
        kept.join(",") + "\r\n"
    };
    let mut bill = pick(WECHAT_HEADER.split(',').map(str::to_owned).collect());
    for line in WECHAT_ROWS {
        bill.push_str(&pick(
            line.split(',').map(|cell| format!("`{cell}")).collect(),
        ));
    }
    bill + WECHAT_SUMMARY
}

fn wechat_rows(payment_amount: &str) -> Vec<BillRow> {
    let first = ("4200001234202612010000000001", "otc-ref-0001");
    vec![
        row(
            2,
            first,
            payment_amount,
            "0.084",
            RowStatus::Paid,
            "2026-12-01T02:00:00Z",
        ),
        row(
            3,
            first,
            "4.00",
            "0.024",
            RowStatus::Refund,
            "2026-12-01T15:59:59Z",
        ),
        row(
            4,
            ("4200001234202612010000000002", "otc-ref-0002"),
            "8.00",
            "0",
            RowStatus::Closed,
            "2026-12-01T16:00:01Z",
        ),
        row(
            5,
            ("4200001234202612010000000003", "otc-ref-0003"),
            "8.50",
            "0",
            RowStatus::Closed,
            "2026-12-01T04:00:00Z",
        ),
    ]
}

#[test]
fn wechat_bill_strips_backticks_and_skips_the_summary() {
    let text = wechat_bill("");
    assert_eq!(
        read_all(BillFormat::WeChatPay, text.as_bytes()),
        Ok(wechat_rows("13.50"))
    );
    assert_eq!(
        read_all(BillFormat::WeChatPay, &with_bom(&text)),
        Ok(wechat_rows("13.50"))
    );
    // Nothing after the summary is a row: such a line refuses the bill
    // (wechat_rows_after_the_summary_refuse_the_bill).
    let after = format!("{text}`2026-12-01 10:00:00,`x\r\n");
    assert!(read_all(BillFormat::WeChatPay, after.as_bytes()).is_err());
}

/// WeChat Pay quotes nothing: a product name or attach with commas is
/// still one cell, as the backtick that starts the next cell tells.
#[test]
fn wechat_cells_with_commas_stay_one_cell() {
    let text = wechat_bill("").replace("`USDT,", "`USDT, 2 coins,order 1,2,");
    assert!(text.contains("`USDT, 2 coins,order 1,2,`"));
    assert_eq!(
        read_all(BillFormat::WeChatPay, text.as_bytes()),
        Ok(wechat_rows("13.50"))
    );
}

/// The coupon row's order total is 14.00, as its notification said; the
/// merchant is settled 13.50, and that is the amount matched (SPEC §20
/// reads 应结订单金额). 订单金额 is not needed at all.
#[test]
fn wechat_rows_carry_the_settled_amount_not_the_order_total() {
    let rows = read_all(BillFormat::WeChatPay, wechat_bill("").as_bytes()).expect("bill");
    assert_eq!(rows[0].amount, Decimal::new(1350, 2));
    assert_eq!(
        read_all(BillFormat::WeChatPay, wechat_bill("订单金额").as_bytes()),
        Ok(wechat_rows("13.50"))
    );
}

/// An order paid wholly with a merchant-funded coupon settles 0.00: the row
/// is read (for the matcher to call a mismatch), the bill is not refused.
#[test]
fn wechat_paid_row_settled_zero_is_read_not_refused() {
    let text = wechat_bill("").replacen("`13.50,`0.50,", "`0.00,`14.00,", 1);
    let rows = read_all(BillFormat::WeChatPay, text.as_bytes()).expect("bill");
    assert_eq!(
        (rows[0].amount, rows[0].status),
        (Decimal::ZERO, RowStatus::Paid)
    );
    // Its refund refunds 0.00 of settled money: read too, a refund row.
    let text = wechat_bill("").replacen("`4.00,`0.00,`ORIGINAL", "`0.00,`0.00,`ORIGINAL", 1);
    let rows = read_all(BillFormat::WeChatPay, text.as_bytes()).expect("zero refund");
    assert_eq!(
        (rows[1].amount, rows[1].status),
        (Decimal::ZERO, RowStatus::Refund)
    );
    // A refund amount that is not an amount still refuses the bill.
    let text = wechat_bill("").replacen("`4.00,`0.00,`ORIGINAL", "`-4.00,`0.00,`ORIGINAL", 1);
    let error = read_all(BillFormat::WeChatPay, text.as_bytes()).expect_err("negative refund");
    assert_eq!((error.line, error.column.as_deref()), (3, Some("退款金额")));
}

#[test]
fn wechat_refund_row_needs_the_refund_column() {
    let error = read_all(BillFormat::WeChatPay, wechat_bill("退款金额").as_bytes())
        .expect_err("no 退款金额");
    assert_eq!((error.line, error.column.as_deref()), (3, Some("退款金额")));
}

#[test]
fn wechat_bill_without_its_summary_is_truncated() {
    let text = wechat_bill("");
    let cut = text.find("总交易单数").expect("summary");
    let error = read_all(BillFormat::WeChatPay, &text.as_bytes()[..cut]).expect_err("truncated");
    assert_eq!(error.line, 5);
    assert!(error.why.contains("truncated"), "{error}");
    let half = text.find("`4,`30.00").expect("summary data");
    let error = read_all(BillFormat::WeChatPay, &text.as_bytes()[..half]).expect_err("truncated");
    assert_eq!(error.line, 6);
}

#[test]
fn wechat_rows_after_the_summary_refuse_the_bill() {
    let text = wechat_bill("");
    let joined = format!("{text}\r\n{text}");
    let error = read_all(BillFormat::WeChatPay, joined.as_bytes()).expect_err("two bills");
    assert!(error.why.contains("after the bill's"), "{error}");
    let summary_data = text.lines().count() as u64;
    assert_eq!(
        error.line,
        summary_data + 2,
        "the first line after it, past a blank one"
    );
    // Blank lines after the summary are fine.
    let blank_tail = format!("{text}\r\n\r\n");
    assert!(read_all(BillFormat::WeChatPay, blank_tail.as_bytes()).is_ok());
}

pub(super) const HMAC_BILL: &str = "\
# A daily bill of an hmac channel. Lines starting with '#' are comments.
id,reference,amount,fee,status,paid_at
pay_0001,otc-7f3a9c,100.00,0.60,paid,2026-12-01T10:00:00+08:00

pay_0002,otc-81b2d4,20.00,0,refund,2026-12-01T03:30:00Z
pay_0003,otc-0c55e1,5.5,0.00,closed,2026-12-01T23:59:59+08:00
";

#[test]
fn hmac_bill_as_documented() {
    let want = vec![
        row(
            3,
            ("pay_0001", "otc-7f3a9c"),
            "100",
            "0.6",
            RowStatus::Paid,
            "2026-12-01T02:00:00Z",
        ),
        row(
            5,
            ("pay_0002", "otc-81b2d4"),
            "20",
            "0",
            RowStatus::Refund,
            "2026-12-01T03:30:00Z",
        ),
        row(
            6,
            ("pay_0003", "otc-0c55e1"),
            "5.5",
            "0",
            RowStatus::Closed,
            "2026-12-01T15:59:59Z",
        ),
    ];
    assert_eq!(read_all(BillFormat::Hmac, HMAC_BILL.as_bytes()), Ok(want));
    let header_only = "id,reference,amount,fee,status,paid_at\n";
    assert_eq!(
        read_all(BillFormat::Hmac, header_only.as_bytes()),
        Ok(vec![])
    );
}

#[test]
fn hmac_columns_in_any_order_with_quoted_and_extra_cells() {
    let bill = "status, paid_at ,note,fee,amount,reference,id\r\n\
                paid,2026-12-01T10:00:00+08:00,\"a, \"\"quoted\"\" note\",0.6,\"100.00\",otc-1,pay_1\r\n";
    let want = vec![row(
        2,
        ("pay_1", "otc-1"),
        "100",
        "0.6",
        RowStatus::Paid,
        "2026-12-01T02:00:00Z",
    )];
    assert_eq!(read_all(BillFormat::Hmac, bill.as_bytes()), Ok(want));
}

#[test]
fn formats_follow_providers() {
    assert_eq!(format_of(Provider::Alipay), BillFormat::Alipay);
    assert_eq!(BillFormat::from(Provider::WeChatPay), BillFormat::WeChatPay);
    assert_eq!(format_of(Provider::Hmac), BillFormat::Hmac);
}
