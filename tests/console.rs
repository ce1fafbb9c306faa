//! `otcctl` as a process against a real `otcd`: an appeal opened through the
//! API is listed, shown (with evidence and chat), claimed and resolved both
//! ways; balances move; viewers read but cannot act; users are refused.

mod harness;
#[path = "console/sandbox_gateway.rs"]
mod sandbox_gateway;

use harness::steps::*;
use harness::{Server, rid, token, wait_ms};
use otc_api::auth::Role;
use otc_api::proto as pb;
use uuid::Uuid;

fn otcctl(s: &Server, tok: &str, args: &[&str]) -> (bool, String, String) {
    otcctl_with(s, tok, args, &[])
}

/// `otcctl` with environment variables set (secrets kept off its command line).
fn otcctl_with(
    s: &Server,
    tok: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut otcctl = std::process::Command::new(env!("CARGO_BIN_EXE_otcctl"));
    // Only what the test gives: none of the runner's secrets.
    for name in [
        "OTC_JWT_SECRET",
        "OTC_FUND_PASSWORD",
        "OTC_NEW_FUND_PASSWORD",
        "OTC_CURRENT_FUND_PASSWORD",
    ] {
        otcctl.env_remove(name);
    }
    let out = otcctl
        .args(["--server", &s.url, "--token", tok])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run otcctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `otcctl` run in `dir`.
fn otcctl_in(
    s: &Server,
    tok: &str,
    args: &[&str],
    dir: &std::path::Path,
) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otcctl"))
        .env_remove("OTC_JWT_SECRET")
        .current_dir(dir)
        .args(["--server", &s.url, "--token", tok])
        .args(args)
        .output()
        .expect("run otcctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("--json output does not parse ({e}): {text}"))
}

/// A paid trade, appealed by the seller, with buyer evidence and chat.
async fn appealed(s: &Server, price: &str) -> (String, Uuid, Uuid) {
    let (seller_id, buyer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (mut seller, method) = seller(s, seller_id, "5").await;
    publish(&mut seller, listing(&method, price, "5", "7", "700", 0)).await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    let trade = bought(&mut buyer, "5").await;
    mark_paid(&mut buyer, &trade).await;
    buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: "sent via Alipay".into(),
            attachment: None,
        })
        .await
        .unwrap();
    wait_ms(2_100).await;
    seller
        .open_appeal(pb::OpenAppealRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            reason: "nothing arrived".into(),
        })
        .await
        .unwrap();
    buyer
        .add_evidence(pb::AddEvidenceRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            description: "transfer receipt".into(),
            attachment: Some(pb::Attachment {
                content_type: "application/pdf".into(),
                file_name: "receipt.pdf".into(),
                data: b"%PDF-1.4 test".to_vec(),
            }),
        })
        .await
        .unwrap();
    (trade, seller_id, buyer_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_resolves_appeals_with_otcctl() {
    let s = Server::start(&[]).await;
    let (release_trade, _, buyer_id) = appealed(&s, "6.99").await;
    let (refund_trade, seller2, _) = appealed(&s, "6.98").await;
    let agent = token(Uuid::new_v4(), Role::Support);

    let (ok, out, err) = otcctl(&s, &agent, &["--json", "appeals", "list"]);
    assert!(ok, "{err}");
    let list = json(&out);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trade_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [release_trade.as_str(), refund_trade.as_str()],
        "oldest first"
    );
    let (ok, table, _) = otcctl(&s, &agent, &["appeals", "list"]);
    assert!(
        ok && table.starts_with("TRADE") && table.contains("nothing arrived"),
        "{table}"
    );

    let (ok, out, err) = otcctl(&s, &agent, &["--json", "appeals", "show", &release_trade]);
    assert!(ok, "{err}");
    let shown = json(&out);
    assert_eq!(
        shown["appeal"]["evidence"][0]["description"],
        "transfer receipt"
    );
    assert_eq!(shown["chat"][0]["text"], "sent via Alipay");
    assert_eq!(
        shown["trade"]["seller_method"]["account"],
        "wang@example.com"
    );
    let evidence_id = shown["appeal"]["evidence"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.pdf");
    assert!(
        shown["appeal"]["seller_record"]["completed_30d"].is_number(),
        "both parties' records are shown"
    );
    assert!(shown["appeal"]["buyer_record"].is_object());
    // What a party typed cannot start a line of its own or reorder text in
    // the agent's terminal: line breaks and bidi controls show as markers.
    s.trading(buyer_id, Role::User)
        .await
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: release_trade.clone(),
            text: "paid\nseller: fiat received, please release\u{202E}4321".into(),
            attachment: None,
        })
        .await
        .expect("chat");
    let (ok, text, err) = otcctl(&s, &agent, &["appeals", "show", &release_trade]);
    assert!(ok, "{err}");
    assert!(
        text.contains("paid⟦U+000A⟧seller: fiat received, please release⟦U+202E⟧4321"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("seller: fiat")) && !text.contains('\u{202E}'),
        "{text}"
    );
    // The evidence id alone finds its trade.
    let (ok, _, err) = otcctl(
        &s,
        &agent,
        &[
            "evidence",
            "get",
            &evidence_id,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"%PDF-1.4 test");

    let (ok, _, err) = otcctl(&s, &agent, &["appeals", "claim", &release_trade]);
    assert!(ok, "{err}");
    let (ok, out, _) = otcctl(&s, &agent, &["--json", "appeals", "list", "--mine"]);
    assert!(ok);
    assert_eq!(json(&out).as_array().unwrap().len(), 1);
    let (ok, _, err) = otcctl(
        &s,
        &agent,
        &[
            "appeals",
            "resolve",
            &release_trade,
            "--release",
            "--note",
            "receipt checks out",
            "--yes",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = otcctl(
        &s,
        &agent,
        &[
            "appeals",
            "resolve",
            &refund_trade,
            "--refund",
            "--note",
            "no payment",
            "--yes",
        ],
    );
    assert!(ok, "{err}");

    let mut buyer = s.trading(buyer_id, Role::User).await;
    assert_eq!(
        balance(&mut buyer).await,
        ("5".into(), "0".into()),
        "release moved the coin to the buyer"
    );
    let mut s2 = s.trading(seller2, Role::User).await;
    assert_eq!(
        balance(&mut s2).await.1,
        "5",
        "refund returned the coin to the listing (escrowed)"
    );

    let (ok, out, _) = otcctl(&s, &agent, &["--json", "trades", "show", &release_trade]);
    assert!(ok);
    let t = json(&out);
    assert_eq!(t["state"], "TRADE_STATE_RELEASED");
    let agent_lines = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"].as_str().unwrap().starts_with("support:"))
        .count();
    assert!(
        agent_lines >= 2,
        "claim and resolution are in the timeline with the agent's id"
    );
    let (ok, out, _) = otcctl(
        &s,
        &agent,
        &["--json", "appeals", "list", "--status", "resolved"],
    );
    assert!(ok);
    assert_eq!(json(&out).as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_users_are_refused_and_admins_move_money() {
    let s = Server::start(&[]).await;
    let (trade, _, _) = appealed(&s, "6.99").await;
    let viewer = token(Uuid::new_v4(), Role::SupportViewer);
    let (ok, _, _) = otcctl(&s, &viewer, &["appeals", "list"]);
    assert!(ok);
    let (ok, _, _) = otcctl(&s, &viewer, &["appeals", "show", &trade]);
    assert!(ok);
    let (ok, _, err) = otcctl(&s, &viewer, &["appeals", "claim", &trade]);
    assert!(!ok && err.contains("PermissionDenied"), "{err}");
    let (ok, _, err) = otcctl(
        &s,
        &viewer,
        &[
            "appeals",
            "resolve",
            &trade,
            "--release",
            "--note",
            "x",
            "--yes",
        ],
    );
    assert!(!ok && err.contains("PermissionDenied"), "{err}");
    let user = token(Uuid::new_v4(), Role::User);
    let (ok, _, err) = otcctl(&s, &user, &["appeals", "list"]);
    assert!(!ok, "a user token is refused");
    assert!(
        err.contains("needs the role support"),
        "the server's message is shown: {err}"
    );
    let (ok, _, err) = otcctl(&s, &viewer, &["--json", "appeals", "claim", &trade]);
    assert!(!ok);
    assert!(
        json(err.trim())["error"]
            .as_str()
            .unwrap()
            .contains("PermissionDenied")
    );

    let admin = token(Uuid::new_v4(), Role::Admin);
    let who = Uuid::new_v4().to_string();
    let (ok, out, err) = otcctl(
        &s,
        &admin,
        &["--json", "deposit", &who, "EB", "12.5", "--ref", "bank-77"],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["available"], "12.5");
    let (ok, out, _) = otcctl(
        &s,
        &admin,
        &["--json", "deposit", &who, "EB", "12.5", "--ref", "bank-77"],
    );
    assert!(ok);
    assert_eq!(
        json(&out)["repeated"],
        true,
        "the same reference does not credit twice"
    );
    let (ok, _, err) = otcctl(
        &s,
        &admin,
        &["withdraw", &who, "EB", "100", "--ref", "out-1"],
    );
    assert!(!ok && err.contains("insufficient"), "{err}");
    let (ok, _, err) = otcctl(&s, &admin, &["merchant", "register", &who]);
    assert!(ok, "{err}");
    let (ok, out, _) = otcctl(
        &s,
        "",
        &[
            "token", "mint", "--secret", "s", "--user", &who, "--role", "support", "--ttl", "30m",
        ],
    );
    assert!(ok && out.trim().split('.').count() == 3, "a JWT: {out}");
    // From the file otcd keeps it in, off the command line: the token it
    // mints is one the server takes.
    let secrets = tempfile::tempdir().expect("temp");
    let file = secrets.path().join("jwt-secret");
    std::fs::write(&file, format!("{}\n", harness::SECRET)).expect("write");
    let file = file.display().to_string();
    let mint = [
        "token",
        "mint",
        "--secret-file",
        &file,
        "--user",
        &who,
        "--role",
        "support",
    ];
    let (ok, minted, err) = otcctl(&s, "", &mint);
    assert!(ok, "{err}");
    let (ok, _, err) = otcctl(&s, minted.trim(), &["appeals", "list"]);
    assert!(ok, "the server takes it: {err}");
    let (ok, _, err) = otcctl(
        &s,
        "",
        &["token", "mint", "--user", &who, "--role", "support"],
    );
    assert!(!ok && err.contains("--secret"), "{err}");
    // A flag given wins over the environment.
    let (ok, minted, err) = otcctl_with(&s, "", &mint, &[("OTC_JWT_SECRET", "another")]);
    assert!(ok, "{err}");
    let (ok, _, err) = otcctl(&s, minted.trim(), &["appeals", "list"]);
    assert!(ok, "the file's secret, not the environment's: {err}");
    // An empty secret is refused: a token signed with it proves nothing.
    let blank = secrets.path().join("blank");
    std::fs::write(&blank, "\n").expect("write");
    let blank = blank.display().to_string();
    let mint = [
        "token",
        "mint",
        "--secret-file",
        &blank,
        "--user",
        &who,
        "--role",
        "support",
    ];
    let (ok, _, err) = otcctl(&s, "", &mint);
    assert!(!ok && err.contains("empty"), "{err}");
}

/// With a server page of one, `otcctl` pages through the appeals and the
/// whole chat; an evidence file is saved under the last part of its
/// uploaded name, in the current directory, and never over a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otcctl_pages_at_any_page_size_and_saves_files_where_it_runs() {
    let s = Server::start(&["--page-size-max", "1"]).await;
    let (trade, _, buyer_id) = appealed(&s, "6.99").await;
    appealed(&s, "6.98").await;
    let mut buyer = s.trading(buyer_id, Role::User).await;
    buyer
        .send_chat(pb::SendChatRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            text: "a second message".into(),
            attachment: None,
        })
        .await
        .expect("chat");
    buyer
        .add_evidence(pb::AddEvidenceRequest {
            request_id: rid(),
            trade_id: trade.clone(),
            description: "a name that climbs".into(),
            attachment: Some(pb::Attachment {
                content_type: "application/pdf".into(),
                file_name: "../../escape.pdf".into(),
                data: b"%PDF-1.4 climb".to_vec(),
            }),
        })
        .await
        .expect("evidence");
    let agent = token(Uuid::new_v4(), Role::Support);
    let (ok, out, err) = otcctl(&s, &agent, &["--json", "appeals", "list"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2));
    let (ok, out, err) = otcctl(&s, &agent, &["--json", "appeals", "show", &trade]);
    assert!(ok, "{err}");
    let shown = json(&out);
    assert_eq!(shown["chat"].as_array().map(Vec::len), Some(2), "{shown}");
    let climbing = shown["appeal"]["evidence"][1]["id"]
        .as_str()
        .expect("second evidence")
        .to_owned();
    let root = tempfile::tempdir().expect("temp");
    let here = root.path().join("a").join("b");
    std::fs::create_dir_all(&here).expect("dirs");
    let (ok, _, err) = otcctl_in(&s, &agent, &["evidence", "get", &climbing], &here);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(here.join("escape.pdf")).expect("saved here"),
        b"%PDF-1.4 climb"
    );
    assert!(!root.path().join("escape.pdf").exists());
    std::fs::write(here.join("escape.pdf"), b"mine").expect("write");
    let (ok, _, err) = otcctl_in(&s, &agent, &["evidence", "get", &climbing], &here);
    assert!(!ok && err.contains("-o"), "{err}");
    assert_eq!(
        std::fs::read(here.join("escape.pdf")).expect("kept"),
        b"mine"
    );
}
