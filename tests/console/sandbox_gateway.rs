//! The README's payment-channel walkthrough with `otcctl` only (the
//! sandbox gateway), in the `console` test binary.

use super::*;

/// The README's payment-channel walkthrough, with `otcctl` only: a trade
/// paid and released by the sandbox gateway with no appeal; then a wrong
/// amount becomes an anomaly CS lists and resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_gateway_pays_and_releases_a_trade_with_otcctl() {
    let sandbox = tempfile::tempdir().expect("temp");
    let dir = sandbox.path().display().to_string();
    let s = Server::start(&["--sandbox-channels", "--sandbox-dir", &dir]).await;
    let (seller, buyer, agent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let admin = token(harness::ADMIN, Role::Admin);
    let (st, bt) = (token(seller, Role::User), token(buyer, Role::User));
    let run = |tok: &str, args: &[&str]| {
        let (ok, out, err) = otcctl(&s, tok, args);
        assert!(ok, "otcctl {args:?}: {err}");
        out.trim().to_owned()
    };
    run(
        &admin,
        &[
            "deposit",
            &seller.to_string(),
            "EB",
            "100",
            "--ref",
            "bank-002",
        ],
    );
    let listed = run(&admin, &["channels", "list"]);
    assert!(
        listed.contains("sandbox-alipay") && listed.contains("/notify/sandbox-alipay"),
        "{listed}"
    );
    run(
        &admin,
        &[
            "channels",
            "assign",
            "--user",
            &seller.to_string(),
            "--channel",
            "sandbox-alipay",
        ],
    );
    let method = run(
        &st,
        &[
            "user",
            "bind-method",
            "--kind",
            "channel",
            "--channel",
            "sandbox-alipay",
        ],
    );
    // Fund passwords from the environment, off the command line.
    let (ok, _, err) = otcctl_with(
        &s,
        &st,
        &["user", "set-password"],
        &[("OTC_NEW_FUND_PASSWORD", "seller-pass")],
    );
    assert!(ok, "{err}");
    let publish = [
        "user",
        "publish",
        "--price",
        "7.00",
        "--total",
        "100",
        "--min",
        "10",
        "--max",
        "700",
        "--method",
        &method,
        "--release-on-verified-payment",
        "--payment-window-secs",
        "600",
    ];
    let (ok, _, err) = otcctl_with(&s, &st, &publish, &[("OTC_FUND_PASSWORD", "wrong-pass")]);
    assert!(
        !ok && err.contains("password"),
        "the password the environment gave: {err}"
    );
    let (ok, _, err) = otcctl_with(&s, &st, &publish, &[("OTC_FUND_PASSWORD", "seller-pass")]);
    assert!(ok, "{err}");
    let trade = run(&bt, &["user", "buy", "--coin", "10"]);
    let paid = run(
        &bt,
        &["--json", "gateway", "pay", &trade, "--sandbox-dir", &dir],
    );
    let paid = json(&paid);
    assert_eq!(paid["status"], 200, "{paid}");
    assert_eq!(paid["answer"], "success");
    let account = json(&run(&bt, &["--json", "user", "account"]));
    assert!(
        account.to_string().contains("\"10\""),
        "the buyer holds 10 EB: {account}"
    );
    // The same notification again (the trade is released: the server gives
    // out no order now, the kept one serves): success, nothing changes.
    let txn = paid["txn_id"].as_str().expect("txn").to_owned();
    let again = json(&run(
        &bt,
        &[
            "--json",
            "gateway",
            "pay",
            &trade,
            "--sandbox-dir",
            &dir,
            "--txn",
            &txn,
        ],
    ));
    assert_eq!(
        (again["status"].clone(), again["answer"].clone()),
        (200.into(), "success".into()),
        "{again}"
    );
    assert_eq!(json(&run(&bt, &["--json", "user", "account"])), account);

    // A wrong amount: the gateway still hears success; CS sees an anomaly.
    let trade2 = run(&bt, &["user", "buy", "--coin", "2"]);
    run(
        &bt,
        &[
            "gateway",
            "pay",
            &trade2,
            "--sandbox-dir",
            &dir,
            "--amount",
            "13.00",
        ],
    );
    let cs = token(agent, Role::Support);
    let list = json(&run(&cs, &["--json", "anomalies", "list"]));
    assert_eq!(list[0]["kind"], "WRONG_AMOUNT", "{list}");
    assert_eq!(list[0]["trade_id"], trade2.as_str());
    let id = list[0]["id"].as_str().expect("id").to_owned();
    run(
        &cs,
        &[
            "anomalies",
            "resolve",
            &id,
            "--note",
            "refunded 13.00 to the payer",
        ],
    );
    let left = json(&run(&cs, &["--json", "anomalies", "list"]));
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left}");
}
