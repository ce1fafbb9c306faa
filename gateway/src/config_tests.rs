use std::fs;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use tempfile::TempDir;

use super::*;
use crate::notification::Provider;
use crate::test_keys::keys;

const APIV3_KEY: &str = "0123456789abcdefghijklmnopqrstuv";
const HMAC_SECRET: &str = "a-long-shared-secret-for-bank-x";

/// The channels file shown in the crate docs, so the docs stay true.
fn documented_example() -> String {
    let lib = include_str!("lib.rs");
    let mut lines = lib
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1);
    let example: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
    assert!(example.len() > 10, "the crate docs lost their TOML example");
    example.join("\n")
}

/// A directory with every key file the documented example names.
fn key_dir() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let keys_dir = dir.path().join("keys");
    fs::create_dir(&keys_dir).expect("mkdir");
    let write = |name: &str, text: &str| fs::write(keys_dir.join(name), text).expect("write");
    let app_pkcs1 = keys().app.to_pkcs1_pem(LineEnding::LF).expect("encode");
    write("alipay-app-private.pem", &app_pkcs1);
    // Alipay's console shows its public key as one bare base64 line.
    let alipay_der = keys()
        .alipay_gateway
        .to_public_key()
        .to_public_key_der()
        .expect("encode");
    write("alipay-public.pem", &BASE64.encode(alipay_der.as_bytes()));
    write("wechat-apiv3.key", &format!("{APIV3_KEY}\n"));
    let platform = keys()
        .platform
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode");
    write("wechat-platform.pem", &platform);
    write("bank-x.secret", &format!("{HMAC_SECRET}\r\n"));
    dir
}

#[test]
fn loads_the_documented_example() {
    let dir = key_dir();
    let path = dir.path().join("channels.toml");
    fs::write(&path, documented_example()).expect("write");
    let channels = load_channels(&path).expect("the documented example loads");
    let summary: Vec<(&str, Provider)> =
        channels.iter().map(|c| (c.name(), c.provider())).collect();
    assert_eq!(
        summary,
        [
            ("alipay-main", Provider::Alipay),
            ("wechat-main", Provider::WeChatPay),
            ("bank-x", Provider::Hmac),
        ]
    );
    assert!(
        channels
            .iter()
            .all(|c| c.time_zone() == chrono_tz::Asia::Shanghai)
    );
    let Account::Hmac(hmac) = channels[2].account() else {
        panic!("bank-x is hmac");
    };
    assert_eq!(
        hmac.secret.as_slice(),
        HMAC_SECRET.as_bytes(),
        "trailing CR LF trimmed"
    );
}

#[test]
fn debug_shows_ids_and_never_key_material() {
    let dir = key_dir();
    let channels = parse_channels(&documented_example(), dir.path()).expect("loads");
    let debug = format!("{channels:?}");
    assert!(
        debug.contains("2021000000000001") && debug.contains("5157F09EFDC096DE15EBE81A47057A72")
    );
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains(APIV3_KEY) && !debug.contains(HMAC_SECRET));
    let pem = keys().app.to_pkcs8_pem(LineEnding::LF).expect("encode");
    for line in pem.lines().filter(|l| !l.starts_with("-----")).take(5) {
        assert!(!debug.contains(line));
    }
}

#[test]
fn errors_name_the_channel_and_the_field() {
    let dir = key_dir();
    let example = documented_example();
    fs::write(
        dir.path().join("keys/short.key"),
        "0123456789abcdefghijklmnopqrstu\n",
    )
    .expect("write");
    fs::write(dir.path().join("keys/short.secret"), "too-short\n").expect("write");
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    fs::write(dir.path().join("keys/cert.pem"), cert).expect("write");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "name = \"bank-x\"",
            "name = \"alipay-main\"",
            &["alipay-main", "twice"],
        ),
        (
            "name = \"bank-x\"",
            "name = \"Bank_X\"",
            &["channel #3", "name"],
        ),
        (
            "kind = \"hmac\"",
            "kind = \"paypal\"",
            &["bank-x", "unknown kind `paypal`"],
        ),
        (
            "app_id = \"2021000000000001\"\n",
            "",
            &["alipay-main", "app_id"],
        ),
        ("app_id =", "app_idd =", &["alipay-main", "app_idd"]),
        (
            "keys/bank-x.secret",
            "keys/missing.secret",
            &["bank-x", "secret", "keys/missing.secret"],
        ),
        (
            "keys/wechat-apiv3.key",
            "keys/short.key",
            &["wechat-main", "apiv3_key", "32 bytes"],
        ),
        (
            "keys/bank-x.secret",
            "keys/short.secret",
            &["bank-x", "secret", "16 bytes"],
        ),
        (
            "keys/wechat-platform.pem",
            "keys/cert.pem",
            &["wechat-main", "public_key", "certificate"],
        ),
        (
            "keys/alipay-public.pem",
            "keys/wechat-apiv3.key",
            &["alipay-main", "alipay_public_key"],
        ),
        (
            "keys/alipay-app-private.pem",
            "keys/alipay-public.pem",
            &["alipay-main", "app_private_key"],
        ),
        (
            "time_zone = \"Asia/Shanghai\"",
            "time_zone = \"Mars/Olympus\"",
            &["alipay-main", "time_zone"],
        ),
        (
            "time_zone = \"Asia/Shanghai\"",
            "time_zone = \"UTC\"",
            &["alipay-main", "time_zone", "Beijing"],
        ),
        (
            "gateway_url = \"https://",
            "gateway_url = \"ftp://",
            &["alipay-main", "gateway_url"],
        ),
        (
            "platform_keys = [",
            "platform_keys = [] # [",
            &["wechat-main", "platform_keys"],
        ),
        (
            "[[channel]]\nname = \"alipay-main\"",
            "[[channels]]\nname = \"alipay-main\"",
            &["channels"],
        ),
    ];
    for (from, to, wants) in cases {
        assert!(example.contains(from), "example lacks {from}");
        let text = example.replacen(from, to, 1);
        let err = match parse_channels(&text, dir.path()) {
            Ok(_) => panic!("{from} -> {to} loaded"),
            Err(err) => err,
        };
        for want in *wants {
            assert!(err.contains(want), "{from} -> {to}: {err:?} lacks {want:?}");
        }
        assert!(
            !err.contains(APIV3_KEY) && !err.contains(HMAC_SECRET),
            "{err}"
        );
    }
}

#[test]
fn files_are_found_relative_to_the_channels_file() {
    let dir = key_dir();
    let path = dir.path().join("channels.toml");
    fs::write(&path, documented_example()).expect("write");
    let elsewhere = TempDir::new().expect("temp dir");
    assert!(parse_channels(&documented_example(), elsewhere.path()).is_err());
    assert!(load_channels(&path).is_ok());
    let missing = load_channels(&dir.path().join("nope.toml")).expect_err("missing file");
    assert!(missing.contains("nope.toml"), "{missing}");
}

#[test]
fn an_empty_file_has_no_channels_and_junk_is_refused() {
    let dir = key_dir();
    assert!(parse_channels("", dir.path()).is_ok_and(|c| c.is_empty()));
    assert!(parse_channels("channel = 3", dir.path()).is_err());
    assert!(parse_channels("[[channel]]\nkind = \"hmac\"", dir.path()).is_err());
    assert!(parse_channels("not toml [", dir.path()).is_err());
}

/// A key pasted where its file's path belongs names no file: the error
/// names the field and never echoes the value; a path that does name a
/// file is shown.
#[test]
fn a_key_pasted_in_place_of_its_path_is_never_echoed() {
    let dir = key_dir();
    let pasted = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7/pasted+key==";
    let rooted = "/Zk3pasted+shared+secret==";
    let cases = [
        ("keys/wechat-apiv3.key", APIV3_KEY, "apiv3_key"),
        ("keys/bank-x.secret", HMAC_SECRET, "secret"),
        ("keys/alipay-app-private.pem", pasted, "app_private_key"),
        ("keys/bank-x.secret", rooted, "secret"),
    ];
    for (path, key, field) in cases {
        let text = documented_example().replacen(path, key, 1);
        let err = parse_channels(&text, dir.path()).expect_err("no such file");
        assert!(err.contains(field) && err.contains("not shown"), "{err}");
        assert!(!err.contains(key), "{field}: {err}");
        assert!(!err.contains(&key[1..9]), "{field}: {err}");
    }
    // A file that is there but wrong: its path is shown, not its bytes.
    let text = documented_example().replacen("keys/wechat-apiv3.key", "keys/bank-x.secret", 1);
    let err = parse_channels(&text, dir.path()).expect_err("wrong key");
    assert!(err.contains("apiv3_key (keys/bank-x.secret)"), "{err}");
    assert!(!err.contains(HMAC_SECRET), "{err}");
    // A missing file in a directory that is there: a typo, shown.
    let text = documented_example().replacen("keys/bank-x.secret", "keys/bank-y.secret", 1);
    let err = parse_channels(&text, dir.path()).expect_err("missing");
    assert!(
        err.contains("secret (keys/bank-y.secret): No such file"),
        "{err}"
    );
}

/// Each key file's path goes to the caller's check before it is read; a
/// refusal names the field.
#[test]
fn each_key_file_is_vetted_before_it_is_read() {
    let dir = key_dir();
    let path = dir.path().join("channels.toml");
    fs::write(&path, documented_example()).expect("write");
    let seen = std::cell::RefCell::new(Vec::new());
    let vet = |p: &Path| {
        seen.borrow_mut().push(p.to_path_buf());
        Ok(())
    };
    assert!(load_channels_vetted(&path, &vet).is_ok());
    let seen = seen.into_inner();
    assert!(
        seen.iter().any(|p| p.ends_with("keys/wechat-apiv3.key"))
            && seen.iter().any(|p| p.ends_with("keys/bank-x.secret"))
            && seen
                .iter()
                .any(|p| p.ends_with("keys/alipay-app-private.pem")),
        "{seen:?}"
    );
    let refuse = |p: &Path| {
        if p.ends_with("keys/bank-x.secret") {
            Err("is inside the data dir".to_owned())
        } else {
            Ok(())
        }
    };
    let err = load_channels_vetted(&path, &refuse).expect_err("refused");
    assert!(
        err.contains("bank-x") && err.contains("secret: is inside the data dir"),
        "{err}"
    );
}
