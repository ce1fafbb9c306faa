//! A sandbox: generated keys, a channels file declaring one channel of each
//! kind, and a [`SandboxGateway`] holding the gateway side of the keys, so
//! demos, end-to-end tests and load benches can post notifications exactly
//! as the real gateways would, with no account anywhere.
//!
//! ```text
//! dir/channels.toml                 sandbox-alipay, sandbox-wechatpay, sandbox-hmac
//! dir/keys/…                        what the server reads (mode 0600)
//! dir/gateway-keys/<channel>.pem    what the gateways sign with (mode 0600)
//! ```

mod gateway;
pub(crate) mod sign;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng as _;
use rand::distributions::Alphanumeric;
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

pub use gateway::SandboxGateway;

/// The sandbox's channels file, in its directory.
pub const CHANNELS_FILE: &str = "channels.toml";
/// The sandbox Alipay channel.
pub const ALIPAY_CHANNEL: &str = "sandbox-alipay";
/// The sandbox WeChat Pay channel.
pub const WECHATPAY_CHANNEL: &str = "sandbox-wechatpay";
/// The sandbox hmac channel.
pub const HMAC_CHANNEL: &str = "sandbox-hmac";
/// The sandbox Alipay app id.
pub const ALIPAY_APP_ID: &str = "9021000000000001";
/// The sandbox Alipay seller id (PID).
pub const ALIPAY_SELLER_ID: &str = "2088000000000001";
/// Alipay's sandbox gateway, where sandbox page-pay URLs point.
pub const ALIPAY_GATEWAY_URL: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";
/// The sandbox WeChat Pay merchant id.
pub const WECHAT_MCHID: &str = "1900000001";
/// The sandbox WeChat Pay app id.
pub const WECHAT_APPID: &str = "wxd678efh567hg6787";
/// Bits of the generated RSA keys.
const KEY_BITS: usize = 2048;
/// Where the server's key files go, under the sandbox directory.
const KEYS_DIR: &str = "keys";
/// Where the gateways' private keys go, under the sandbox directory.
pub(crate) const GATEWAY_KEYS_DIR: &str = "gateway-keys";

/// A payment the sandbox gateway reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPayment {
    /// The provider's transaction id.
    pub txn_id: String,
    /// Our payment reference (`out_trade_no`).
    pub reference: String,
    /// The amount in yuan, at most 2 decimal places.
    pub amount: Decimal,
    /// Paid or not.
    pub status: SandboxStatus,
    /// The charset of an Alipay notification (ignored by the others).
    pub charset: SandboxCharset,
    /// The order subject, sent by Alipay; empty for none.
    pub subject: String,
}

/// What the sandbox payment's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStatus {
    /// Alipay `TRADE_SUCCESS`, WeChat `SUCCESS`, hmac `paid`.
    Paid,
    /// Alipay `WAIT_BUYER_PAY`, WeChat `NOTPAY`, hmac `pending`.
    Pending,
    /// Alipay `TRADE_CLOSED`, WeChat `CLOSED`, hmac `failed`.
    Closed,
}

/// The charset of an Alipay notification body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxCharset {
    /// `charset=utf-8`.
    Utf8,
    /// `charset=gbk`.
    Gbk,
}

/// Makes a sandbox in `dir` and returns the path of its channels file. An
/// existing sandbox (its channels file present) is reused as it is.
///
/// # Errors
/// A file that cannot be written, or key generation failing.
pub fn create(dir: &Path) -> Result<PathBuf, String> {
    let channels_path = dir.join(CHANNELS_FILE);
    if channels_path.exists() {
        return Ok(channels_path);
    }
    for sub in [
        Path::new(""),
        Path::new(KEYS_DIR),
        Path::new(GATEWAY_KEYS_DIR),
    ] {
        make_private_dir(&dir.join(sub))?;
    }
    let [alipay_gateway, app, platform] = generate_keys()?;
    let pem_private = |key: &RsaPrivateKey| {
        key.to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("encoding a private key: {e}"))
    };
    let pem_public = |key: &RsaPrivateKey| {
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("encoding a public key: {e}"))
    };
    let keys = dir.join(KEYS_DIR);
    let gateway_keys = dir.join(GATEWAY_KEYS_DIR);
    write_private(
        &keys.join("alipay-app-private.pem"),
        pem_private(&app)?.as_bytes(),
    )?;
    write_private(
        &keys.join("alipay-public.pem"),
        pem_public(&alipay_gateway)?.as_bytes(),
    )?;
    write_private(
        &keys.join("wechat-platform.pem"),
        pem_public(&platform)?.as_bytes(),
    )?;
    let apiv3_key: String = random_text(32);
    write_private(
        &keys.join("wechat-apiv3.key"),
        format!("{apiv3_key}\n").as_bytes(),
    )?;
    let hmac_secret: String = random_text(48);
    write_private(
        &keys.join("hmac.secret"),
        format!("{hmac_secret}\n").as_bytes(),
    )?;
    let gateway_pem = |channel: &str| gateway_keys.join(format!("{channel}.pem"));
    write_private(
        &gateway_pem(ALIPAY_CHANNEL),
        pem_private(&alipay_gateway)?.as_bytes(),
    )?;
    write_private(
        &gateway_pem(WECHATPAY_CHANNEL),
        pem_private(&platform)?.as_bytes(),
    )?;
    let serial = key_serial(&platform)?;
    // The channels file last, through a rename: its presence means the
    // sandbox is complete.
    let temporary = dir.join(format!("{CHANNELS_FILE}.partial"));
    write_private(&temporary, channels_toml(&serial).as_bytes())?;
    fs::rename(&temporary, &channels_path)
        .map_err(|e| format!("{}: {e}", channels_path.display()))?;
    Ok(channels_path)
}

fn channels_toml(serial: &str) -> String {
    format!(
        r#"# A sandbox made by otc-gateway: keys generated here, no real account.
[[channel]]
name = "{ALIPAY_CHANNEL}"
kind = "alipay"
app_id = "{ALIPAY_APP_ID}"
seller_id = "{ALIPAY_SELLER_ID}"
app_private_key = "{KEYS_DIR}/alipay-app-private.pem"
alipay_public_key = "{KEYS_DIR}/alipay-public.pem"
gateway_url = "{ALIPAY_GATEWAY_URL}"

[[channel]]
name = "{WECHATPAY_CHANNEL}"
kind = "wechatpay"
mchid = "{WECHAT_MCHID}"
appid = "{WECHAT_APPID}"
apiv3_key = "{KEYS_DIR}/wechat-apiv3.key"
platform_keys = [ {{ serial = "{serial}", public_key = "{KEYS_DIR}/wechat-platform.pem" }} ]

[[channel]]
name = "{HMAC_CHANNEL}"
kind = "hmac"
secret = "{KEYS_DIR}/hmac.secret"
"#
    )
}

/// Three 2048-bit keys, generated in parallel.
fn generate_keys() -> Result<[RsaPrivateKey; 3], String> {
    let generate = || RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS);
    let results = std::thread::scope(|scope| {
        let handles = [(); 3].map(|()| scope.spawn(generate));
        handles.map(|h| h.join())
    });
    let mut keys = Vec::with_capacity(3);
    for result in results {
        let key = result
            .map_err(|_| "key generation panicked".to_owned())?
            .map_err(|e| format!("key generation: {e}"))?;
        keys.push(key);
    }
    keys.try_into()
        .map_err(|_| "key generation: wrong count".to_owned())
}

/// A serial for a generated platform key: the first 20 bytes of the SHA-256
/// of its public key, in upper-case hex (the shape of WeChat's serials).
fn key_serial(key: &RsaPrivateKey) -> Result<String, String> {
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| format!("encoding a public key: {e}"))?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(hex::encode_upper(&digest[..20]))
}

fn random_text(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn make_private_dir(path: &Path) -> Result<(), String> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a file only its owner can read, synced before it returns (a
/// leftover from an interrupted run is replaced); an error names the path.
/// Also otcd's token secret.
///
/// # Errors
/// The file cannot be removed, created, written or synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(at(e)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(at)?;
    file.write_all(bytes).map_err(at)?;
    file.sync_all().map_err(at)
}
