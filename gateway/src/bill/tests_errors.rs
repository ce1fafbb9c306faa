//! Refusals, limits, the digest and streaming.

use std::io::{BufReader, Read as _};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use super::tests_formats::{
    ALIPAY_PAYMENT, BYTES_MAX, HMAC_BILL, alipay_bill, alipay_header, dec, gbk, read_all,
    wechat_bill,
};
use super::*;

const HMAC_HEADER: &str = "id,reference,amount,fee,status,paid_at\n";

/// The error of an hmac bill with one data line, `line`.
fn hmac_error(line: &str) -> BillError {
    let bill = format!("# one row\n{HMAC_HEADER}{line}\n");
    read_all(BillFormat::Hmac, bill.as_bytes()).expect_err("refused")
}

#[test]
fn wrong_cell_count_names_the_line() {
    let bill = format!("{HMAC_HEADER}a,b,1.00,0,paid,2026-12-01T00:00:00Z\n\na,b,1.00,0,paid\n");
    let error = read_all(BillFormat::Hmac, bill.as_bytes()).expect_err("short line");
    assert_eq!(error, BillError::at(4, "5 cells where the header has 6"));
    assert_eq!(error.to_string(), "line 4: 5 cells where the header has 6");
}

#[test]
fn bad_amounts_name_line_and_column() {
    for (amount, why) in [
        ("100.0000001", "more than 2 decimal places"),
        ("-5", "not a plain decimal amount"),
        ("1e3", "not a plain decimal amount"),
        ("abc", "not a plain decimal amount"),
        ("", "empty"),
    ] {
        let error = hmac_error(&format!("a,b,{amount},0,paid,2026-12-01T00:00:00Z"));
        assert_eq!(error, BillError::in_column(3, "amount", why), "{amount:?}");
    }
    // A line settled at 0.00 is read, for the matcher to report.
    let bill = format!("{HMAC_HEADER}a,b,0.00,0,paid,2026-12-01T00:00:00Z\n");
    let rows = read_all(BillFormat::Hmac, bill.as_bytes()).expect("a zero line");
    assert!(rows[0].amount.is_zero());
    let error = hmac_error("a,b,1.00,-0.01,refund,2026-12-01T00:00:00Z");
    assert_eq!(error.column.as_deref(), Some("fee"));

    // A minus sign is a refund's only.
    let mut payment = ALIPAY_PAYMENT.to_vec();
    payment.retain(|(name, _)| *name != "订单金额（元）");
    payment.push(("订单金额（元）", "-5"));
    let text = alipay_bill(&alipay_header(), &[&payment]);
    let error = read_all(BillFormat::Alipay, &gbk(&text)).expect_err("negative payment");
    assert_eq!(
        (error.line, error.column.as_deref()),
        (6, Some("订单金额（元）"))
    );
    assert_eq!(
        error.to_string(),
        "line 6, column 订单金额（元）: not a plain decimal amount"
    );
}

#[test]
fn bad_dates_name_the_column() {
    let error = hmac_error("a,b,1.00,0,paid,2026-12-01 10:00:00");
    assert_eq!((error.line, error.column.as_deref()), (3, Some("paid_at")));

    let mut payment = ALIPAY_PAYMENT.to_vec();
    payment.retain(|(name, _)| *name != "创建时间");
    payment.push(("创建时间", "2026/12/01 10:00"));
    let text = alipay_bill(&alipay_header(), &[&payment]);
    let error = read_all(BillFormat::Alipay, &gbk(&text)).expect_err("bad date");
    assert_eq!((error.line, error.column.as_deref()), (6, Some("创建时间")));
}

#[test]
fn cells_and_statuses_are_checked() {
    let error = hmac_error(&format!(
        "a,b,1.00,0,{},2026-12-01T00:00:00Z",
        "x".repeat(500)
    ));
    assert_eq!(error.column.as_deref(), Some("status"));
    assert!(error.to_string().len() < 200, "{error}");
    let error = hmac_error(&format!(
        "{},b,1.00,0,paid,2026-12-01T00:00:00Z",
        "x".repeat(65)
    ));
    assert_eq!(error.column.as_deref(), Some("id"));
    let error = hmac_error("a,\"b,1.00,0,paid,2026-12-01T00:00:00Z");
    assert_eq!(
        error,
        BillError::at(3, "a quoted cell does not end on its line")
    );
    let error = hmac_error("a,\"b\"c,1.00,0,paid,2026-12-01T00:00:00Z");
    assert_eq!(error, BillError::at(3, "text after a closing quote"));

    let twice = "id,reference,amount,fee,status,paid_at,id\n";
    let error = read_all(BillFormat::Hmac, twice.as_bytes()).expect_err("id twice");
    assert_eq!((error.line, error.column.as_deref()), (1, Some("id")));
    let error = read_all(BillFormat::Hmac, b"# nothing\n\n").expect_err("no header");
    assert_eq!(
        error,
        BillError::at(2, "the bill ends before its header line")
    );
}

#[test]
fn text_must_be_in_the_bill_encoding() {
    let bill = [
        HMAC_HEADER.as_bytes(),
        b"a,b\xff,1.00,0,paid,2026-12-01T00:00:00Z\n",
    ]
    .concat();
    let error = read_all(BillFormat::Hmac, &bill).expect_err("not UTF-8");
    assert_eq!(error, BillError::at(2, "not valid UTF-8"));

    let text = alipay_bill(&alipay_header(), &[ALIPAY_PAYMENT]);
    let mut bytes = gbk(&text);
    let at = bytes
        .windows(4)
        .position(|w| w == b"USDT")
        .expect("in the row");
    bytes.splice(at..at, [0x81, 0x20]);
    let error = read_all(BillFormat::Alipay, &bytes).expect_err("not GBK");
    assert_eq!(error, BillError::at(6, "not valid GBK"));
}

#[test]
fn a_bill_over_the_size_limit_is_refused() {
    let bytes = HMAC_BILL.as_bytes();
    let size = bytes.len() as u64;
    let read = |limit| BillReader::new(BillFormat::Hmac, bytes, limit).collect();
    let rows: Result<Vec<BillRow>, BillError> = read(size);
    assert_eq!(rows.map(|rows| rows.len()), Ok(3));
    let rows: Result<Vec<BillRow>, BillError> = read(size - 1);
    let error = rows.expect_err("one byte over");
    assert_eq!(error.line, 6);
    assert_eq!(
        error.why,
        format!(
            "the bill is larger than the configured limit of {} bytes",
            size - 1
        )
    );
    // Refused within the first line, long before the end.
    let rows: Result<Vec<BillRow>, BillError> = read(50);
    assert_eq!(rows.expect_err("over").line, 1);
}

#[test]
fn an_over_long_line_is_refused_naming_it() {
    for len in [LINE_BYTES_MAX + 1, 1 << 20] {
        let bill = format!(
            "{HMAC_HEADER}a,b,1.00,0,paid,2026-12-01T00:00:00Z\n{}\n",
            "x".repeat(len)
        );
        // Through a small buffer, so the line arrives in many chunks.
        let input = BufReader::with_capacity(1000, bill.as_bytes());
        let mut reader = BillReader::new(BillFormat::Hmac, input, BYTES_MAX * 2);
        assert!(matches!(reader.next_row(), Ok(Some(_))));
        let error = reader.next_row().expect_err("too long");
        assert_eq!(
            error,
            BillError::at(3, "the line is longer than 65536 bytes")
        );
    }
    // The longest line allowed is read (and then refused for its cells).
    let bill = format!("{HMAC_HEADER}{}\r\n", "x".repeat(LINE_BYTES_MAX));
    let error = read_all(BillFormat::Hmac, bill.as_bytes()).expect_err("one cell");
    assert_eq!(error, BillError::at(2, "1 cells where the header has 6"));
}

#[test]
fn a_refused_bill_stays_refused() {
    let bill = format!(
        "{HMAC_HEADER}a,b,1e3,0,paid,2026-12-01T00:00:00Z\na,b,1,0,paid,2026-12-01T00:00:00Z\n"
    );
    let mut reader = BillReader::new(BillFormat::Hmac, bill.as_bytes(), BYTES_MAX);
    let first = reader.next_row().expect_err("bad amount");
    assert_eq!(reader.next_row(), Err(first.clone()));
    let mut reader = BillReader::new(BillFormat::Hmac, bill.as_bytes(), BYTES_MAX);
    assert_eq!(reader.next(), Some(Err(first)));
    assert_eq!(reader.next(), None);
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let mut reader = BillReader::new(BillFormat::Hmac, bytes, BYTES_MAX);
    while let Ok(Some(_)) = reader.next_row() {}
    reader.digest()
}

#[test]
fn the_digest_is_of_the_whole_file() {
    let bytes = HMAC_BILL.as_bytes();
    let whole: [u8; 32] = Sha256::digest(bytes).into();
    assert_eq!(digest_of(bytes), whole);
    assert_eq!(digest_of(bytes), digest_of(HMAC_BILL.to_owned().as_bytes()));
    let changed = HMAC_BILL.replace("100.00", "100.01");
    assert_ne!(digest_of(changed.as_bytes()), whole);
    let comment = HMAC_BILL.replace("comments.", "comments!");
    assert_ne!(digest_of(comment.as_bytes()), whole);

    let mut reader = BillReader::new(BillFormat::Hmac, bytes, BYTES_MAX);
    assert!(matches!(reader.next_row(), Ok(Some(_))));
    let prefix = HMAC_BILL.split_inclusive('\n').take(3).collect::<String>();
    assert_eq!(
        reader.digest(),
        <[u8; 32]>::from(Sha256::digest(prefix.as_bytes()))
    );
}

#[test]
fn the_synthetic_bill_is_valid_and_lazy() {
    let rows: Result<Vec<BillRow>, BillError> =
        BillReader::new(BillFormat::Hmac, synthetic_hmac_bill(1000), BYTES_MAX).collect();
    let rows = rows.expect("valid");
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[0].txn_id, "syn-000000000000");
    assert_eq!((rows[0].amount, rows[0].line), (dec("0.01"), 3));
    assert_eq!(rows[999].amount, dec("10.00"));
    assert_eq!(rows[999].fee, dec("0.06"));
    assert_eq!(rows[19].status, RowStatus::Refund);
    let mut text = String::new();
    synthetic_hmac_bill(2)
        .read_to_string(&mut text)
        .expect("in memory");
    assert_eq!(
        text,
        "# synthetic hmac bill\nid,reference,amount,fee,status,paid_at\n\
         syn-000000000000,otc-000000000000,0.01,0.00,paid,2026-12-01T00:00:00Z\n\
         syn-000000000001,otc-000000000001,0.02,0.00,paid,2026-12-01T00:00:01Z\n"
    );
}

/// `cargo test -p otc-gateway --release -- --ignored --nocapture million_lines`
#[test]
#[ignore = "slow: streams a million rows"]
fn million_lines() {
    const LINES: u64 = 1_000_000;
    let started = Instant::now();
    let mut reader = BillReader::new(BillFormat::Hmac, synthetic_hmac_bill(LINES), u64::MAX);
    let mut rows = 0_u64;
    let mut total = Decimal::ZERO;
    while let Some(row) = reader.next_row().expect("valid") {
        rows += 1;
        total += row.amount;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(rows, LINES);
    assert!(total > Decimal::ZERO);
    println!(
        "million_lines: {rows} rows in {secs:.2} s, {:.0} lines/s, digest {}",
        rows as f64 / secs,
        hex::encode(&reader.digest()[..8])
    );
}

/// A bill of another account is refused where it names its account; a bill
/// that does not name one, or a reader that expects none, checks nothing.
#[test]
fn a_bill_of_another_account_is_refused_naming_where() {
    let read = |format, bytes: &[u8], merchant: &str| {
        let account = BillAccount {
            merchant: Some(merchant.to_owned()),
        };
        BillReader::new(format, bytes, BYTES_MAX)
            .of_account(account)
            .collect::<Result<Vec<BillRow>, BillError>>()
    };
    // The Alipay bill's 账号 is [20880000000000010156]: the PID, then 0156.
    let alipay = gbk(&alipay_bill(&alipay_header(), &[ALIPAY_PAYMENT]));
    assert!(read(BillFormat::Alipay, &alipay, "2088000000000001").is_ok());
    let e = read(BillFormat::Alipay, &alipay, "2088000000000002").expect_err("PID");
    assert_eq!((e.line, e.column.as_deref()), (2, Some("账号")), "{e}");
    assert!(e.why.contains("2088000000000002"), "{e}");

    let wechat = wechat_bill("");
    assert!(read(BillFormat::WeChatPay, wechat.as_bytes(), "1900000001").is_ok());
    let e = read(BillFormat::WeChatPay, wechat.as_bytes(), "1900000002").expect_err("mchid");
    assert_eq!((e.line, e.column.as_deref()), (2, Some("商户号")), "{e}");
    assert!(e.why.contains("`1900000001`"), "{e}");
    // Rows of another app of the same merchant are the merchant's.
    let other_app = wechat.replace("wx2421b1c4370ec43b", "wx0000000000000001");
    assert!(read(BillFormat::WeChatPay, other_app.as_bytes(), "1900000001").is_ok());
    let without = wechat_bill("商户号");
    assert!(read(BillFormat::WeChatPay, without.as_bytes(), "1900000002").is_ok());
    assert!(read_all(BillFormat::WeChatPay, wechat.as_bytes()).is_ok());
}

#[test]
fn alipay_account_comments_are_read_as_alipay_writes_them() {
    assert_eq!(
        alipay_account("#账号：[20880000000000010156]"),
        Some("20880000000000010156")
    );
    assert_eq!(alipay_account("# 账号: [ 2088 ]  "), Some("2088"));
    assert_eq!(alipay_account("#起始日期：[2026年12月01日 00:00:00]"), None);
    assert_eq!(alipay_account("#账号：20880000000000010156"), None);
}
