//! The channels file (see the crate docs for its format).
//!
//! Every error names the channel and the field (and the key file's path as
//! configured), never anything read from a key file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::alipay::{AlipayAccount, DEFAULT_GATEWAY_URL};
use crate::channel::{Account, Channel};
use crate::keys::{Rsa2Signer, Rsa2Verifier, load_private_key, load_public_key, read_secret};
use crate::webhook::{HmacAccount, SECRET_BYTES_MIN};
use crate::wechat::{APIV3_KEY_BYTES, PlatformKey, WeChatAccount};

/// Longest channel name, in bytes.
pub const CHANNEL_NAME_BYTES_MAX: usize = 32;
/// Most channels in one file.
pub const CHANNELS_MAX: usize = 64;
/// Most platform keys of one WeChat Pay channel.
pub const PLATFORM_KEYS_MAX: usize = 8;
/// Largest channels file, in bytes.
const CHANNELS_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Longest account id (app id, PID, mchid, serial), in bytes.
const ACCOUNT_ID_BYTES_MAX: usize = 64;
/// The time zone when none is configured: where Alipay and WeChat Pay keep
/// their books.
const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlipaySpec {
    app_id: String,
    seller_id: String,
    app_private_key: PathBuf,
    alipay_public_key: PathBuf,
    gateway_url: Option<String>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeChatSpec {
    mchid: String,
    appid: String,
    apiv3_key: PathBuf,
    platform_keys: Vec<PlatformKeySpec>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformKeySpec {
    serial: String,
    public_key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HmacSpec {
    secret: PathBuf,
    time_zone: Option<String>,
}

/// Reads the channels file at `path` and every key file it names (relative
/// to the file's directory).
///
/// # Errors
/// What is wrong, naming the file, the channel and the field.
pub fn load_channels(path: &Path) -> Result<Vec<Channel>, String> {
    load_channels_vetted(path, &|_| Ok(()))
}

/// [`load_channels`], with each key file's path (as resolved against the
/// channels file's directory) passed to `vet` before it is read: `otcd`
/// refuses key files inside its data dir.
///
/// # Errors
/// As [`load_channels`]; also what `vet` says, naming the field.
pub fn load_channels_vetted(path: &Path, vet: Vet<'_>) -> Result<Vec<Channel>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > CHANNELS_FILE_BYTES_MAX {
        return Err(format!(
            "{}: larger than {CHANNELS_FILE_BYTES_MAX} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse_channels_in(&text, &KeyFiles { dir: base_dir, vet })
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks a key file's path before it is read (see [`load_channels_vetted`]).
pub type Vet<'a> = &'a dyn Fn(&Path) -> Result<(), String>;

/// Where key files are read from, and the check each path passes first.
struct KeyFiles<'a> {
    dir: &'a Path,
    vet: Vet<'a>,
}

/// Parses channels-file text; key file paths are relative to `base_dir`.
///
/// # Errors
/// What is wrong, naming the channel and the field.
pub fn parse_channels(toml_text: &str, base_dir: &Path) -> Result<Vec<Channel>, String> {
    parse_channels_in(
        toml_text,
        &KeyFiles {
            dir: base_dir,
            vet: &|_| Ok(()),
        },
    )
}

fn parse_channels_in(toml_text: &str, keys: &KeyFiles<'_>) -> Result<Vec<Channel>, String> {
    let mut file: toml::Table = toml_text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    let entries = match file.remove("channel") {
        None => Vec::new(),
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => return Err("`channel` must be an array of tables ([[channel]])".to_owned()),
    };
    if let Some(key) = file.keys().next() {
        return Err(format!("unknown top-level key `{key}` (only [[channel]])"));
    }
    if entries.len() > CHANNELS_MAX {
        return Err(format!("more than {CHANNELS_MAX} channels"));
    }
    let mut names = HashSet::new();
    let mut channels = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let channel = parse_channel(index, entry, keys)?;
        if !names.insert(channel.name().to_owned()) {
            return Err(format!("channel {}: name used twice", channel.name()));
        }
        channels.push(channel);
    }
    debug_assert_eq!(names.len(), channels.len());
    Ok(channels)
}

fn parse_channel(index: usize, entry: toml::Value, keys: &KeyFiles<'_>) -> Result<Channel, String> {
    let toml::Value::Table(mut table) = entry else {
        return Err(format!("channel #{}: not a table", index + 1));
    };
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) => name,
        _ => return Err(format!("channel #{}: missing `name` string", index + 1)),
    };
    check_name(&name).map_err(|e| format!("channel #{}: name {e}", index + 1))?;
    let at = |e: String| format!("channel {name}: {e}");
    let kind = match table.remove("kind") {
        Some(toml::Value::String(kind)) => kind,
        _ => return Err(at("missing `kind` (alipay, wechatpay or hmac)".to_owned())),
    };
    let rest = toml::Value::Table(table);
    let (time_zone, account) = match kind.as_str() {
        "alipay" => alipay(spec(rest).map_err(at)?, keys).map_err(at)?,
        "wechatpay" => wechat(spec(rest).map_err(at)?, keys).map_err(at)?,
        "hmac" => hmac(spec(rest).map_err(at)?, keys).map_err(at)?,
        other => {
            return Err(at(format!(
                "unknown kind `{other}` (alipay, wechatpay or hmac)"
            )));
        }
    };
    Ok(Channel::new(name, time_zone, account))
}

fn spec<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T, String> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_owned())
}

fn alipay(spec: AlipaySpec, keys: &KeyFiles<'_>) -> Result<(Tz, Account), String> {
    check_account_id("app_id", &spec.app_id)?;
    check_account_id("seller_id", &spec.seller_id)?;
    let gateway_url = spec
        .gateway_url
        .unwrap_or_else(|| DEFAULT_GATEWAY_URL.to_owned());
    check_gateway_url(&gateway_url)?;
    let app_key = key_file(
        "app_private_key",
        keys,
        &spec.app_private_key,
        load_private_key,
    )?;
    let alipay_key = key_file(
        "alipay_public_key",
        keys,
        &spec.alipay_public_key,
        load_public_key,
    )?;
    let account = AlipayAccount {
        app_id: spec.app_id,
        seller_id: spec.seller_id,
        app_key: Rsa2Signer::new(app_key),
        alipay_key: Rsa2Verifier::new(alipay_key),
        gateway_url,
    };
    Ok((
        beijing_time(spec.time_zone)?,
        Account::Alipay(Box::new(account)),
    ))
}

fn wechat(spec: WeChatSpec, keys: &KeyFiles<'_>) -> Result<(Tz, Account), String> {
    check_account_id("mchid", &spec.mchid)?;
    check_account_id("appid", &spec.appid)?;
    if spec.platform_keys.is_empty() || spec.platform_keys.len() > PLATFORM_KEYS_MAX {
        return Err(format!("platform_keys: give 1 to {PLATFORM_KEYS_MAX} keys"));
    }
    let secret = key_file("apiv3_key", keys, &spec.apiv3_key, read_secret)?;
    let apiv3_key: [u8; APIV3_KEY_BYTES] = secret.as_slice().try_into().map_err(|_| {
        format!(
            "apiv3_key ({}): must be exactly {APIV3_KEY_BYTES} bytes",
            spec.apiv3_key.display()
        )
    })?;
    let mut platform_keys: Vec<PlatformKey> = Vec::with_capacity(spec.platform_keys.len());
    for platform in spec.platform_keys {
        check_account_id("platform_keys.serial", &platform.serial)?;
        if platform_keys
            .iter()
            .any(|k| k.serial.eq_ignore_ascii_case(&platform.serial))
        {
            return Err(format!("platform_keys: serial {} twice", platform.serial));
        }
        let field = format!("platform_keys[{}].public_key", platform.serial);
        let key = key_file(&field, keys, &platform.public_key, load_public_key)?;
        platform_keys.push(PlatformKey {
            serial: platform.serial,
            key: Rsa2Verifier::new(key),
        });
    }
    let account = WeChatAccount {
        mchid: spec.mchid,
        appid: spec.appid,
        apiv3_key: Zeroizing::new(apiv3_key),
        platform_keys,
    };
    Ok((
        beijing_time(spec.time_zone)?,
        Account::WeChatPay(Box::new(account)),
    ))
}

fn hmac(spec: HmacSpec, keys: &KeyFiles<'_>) -> Result<(Tz, Account), String> {
    let secret = key_file("secret", keys, &spec.secret, read_secret)?;
    if secret.len() < SECRET_BYTES_MIN {
        return Err(format!(
            "secret ({}): must be at least {SECRET_BYTES_MIN} bytes",
            spec.secret.display()
        ));
    }
    let account = HmacAccount { secret };
    Ok((time_zone(spec.time_zone)?, Account::Hmac(account)))
}

/// Loads a key file relative to the channels file's directory, once the
/// vet let its path pass; errors name the field, and the path as configured
/// only when a file is there (a value that names none may be a key pasted
/// in place of its path: never echoed).
fn key_file<T>(
    field: &str,
    keys: &KeyFiles<'_>,
    path: &Path,
    load: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let full = keys.dir.join(path);
    if let Err(e) = std::fs::metadata(&full) {
        // Shown when a directory of it is there (not the root alone): a
        // typo in a file's name, not a key (whose `/`s name no directory).
        let in_a_directory = path.parent().is_some_and(|d| {
            d.components()
                .any(|c| matches!(c, std::path::Component::Normal(_)))
                && keys.dir.join(d).is_dir()
        });
        if in_a_directory {
            return Err(format!("{field} ({}): {e}", path.display()));
        }
        return Err(format!(
            "{field}: the path given cannot be read: {} (the path is not shown, in \
             case it is a key pasted in place of one); give the path of the file \
             holding the key",
            e.kind()
        ));
    }
    (keys.vet)(&full).map_err(|e| format!("{field}: {e}"))?;
    load(&full).map_err(|e| format!("{field} ({}): {e}", path.display()))
}

/// Checks a channel name: 1–32 of `a-z`, `0-9`, `-`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= CHANNEL_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {CHANNEL_NAME_BYTES_MAX} characters of a-z, 0-9 and -"
        ))
    }
}

fn check_account_id(field: &str, id: &str) -> Result<(), String> {
    check_id_text(field, id, ACCOUNT_ID_BYTES_MAX)
}

/// An id gateways accept (account ids, `out_trade_no`): 1 to `max` of
/// ASCII letters, digits, `_` and `-`.
pub(crate) fn check_id_text(field: &str, text: &str, max: usize) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} must be 1 to {max} of A-Z, a-z, 0-9, _ and -"
        ))
    }
}

fn check_gateway_url(url: &str) -> Result<(), String> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(['?', '#'])
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err("gateway_url must be an http(s) URL without query or fragment".to_owned())
    }
}

fn time_zone(name: Option<String>) -> Result<Tz, String> {
    match name {
        None => Ok(DEFAULT_TIME_ZONE),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| format!("time_zone `{name}` is not an IANA time zone")),
    }
}

/// Alipay's and WeChat Pay's bills and notifications are in Beijing time, so
/// their bill days are too: another `time_zone` would put a day's payments
/// in another day's bill.
fn beijing_time(name: Option<String>) -> Result<Tz, String> {
    let tz = time_zone(name)?;
    if tz == chrono_tz::Asia::Shanghai {
        Ok(tz)
    } else {
        Err(format!(
            "time_zone `{tz}`: this provider's bills are in Beijing time; leave it out or say Asia/Shanghai"
        ))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
