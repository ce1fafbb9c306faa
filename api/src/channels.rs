//! The payment channels this server was started with (SPEC §19): the
//! operator's `--channels FILE`, or the sandbox's generated ones, and the
//! public URLs their gateways reach.
//!
//! Keys stay inside `otc_gateway::Channel` (its `Debug` redacts them); only
//! names and providers leave this module.

use std::collections::BTreeMap;

use otc_engine::payment::ChannelProvider;
use otc_gateway::{Channel, Provider};

/// The declared channels and where their gateways post.
pub struct Channels {
    by_name: BTreeMap<String, Channel>,
    /// `http(s)://host[:port]` the gateways (and browsers returning) reach.
    public_url: String,
}

impl Channels {
    /// No channels (the server was started without `--channels`).
    pub fn none() -> Self {
        Self {
            by_name: BTreeMap::new(),
            public_url: String::new(),
        }
    }

    /// `channels` served at `public_url` (trailing `/` dropped).
    ///
    /// # Errors
    /// A name is declared twice.
    pub fn new(channels: Vec<Channel>, public_url: &str) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for c in channels {
            let name = c.name().to_owned();
            if by_name.insert(name.clone(), c).is_some() {
                return Err(format!("channel {name} is declared twice"));
            }
        }
        Ok(Self {
            by_name,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// A channel by name.
    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.by_name.get(name)
    }

    /// Every channel, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.by_name.values()
    }

    /// Whether any channel is declared.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The engine's name for a channel's provider.
    pub fn provider(&self, name: &str) -> Option<ChannelProvider> {
        self.get(name).map(|c| provider_of(c.provider()))
    }

    /// Where the channel's gateway posts notifications.
    pub fn notify_url(&self, name: &str) -> String {
        format!("{}/notify/{name}", self.public_url)
    }

    /// Where the payer's browser comes back to (Alipay `return_url`).
    pub fn return_url(&self, name: &str) -> String {
        format!("{}/return/{name}", self.public_url)
    }
}

/// The engine's name for a gateway kind.
pub fn provider_of(p: Provider) -> ChannelProvider {
    match p {
        Provider::Alipay => ChannelProvider::Alipay,
        Provider::WeChatPay => ChannelProvider::WeChatPay,
        Provider::Hmac => ChannelProvider::Hmac,
    }
}

/// The channels `otcd`'s flags declare: `--channels FILE` and, with
/// `--sandbox-channels`, the sandbox's (keys created in `--sandbox-dir`).
///
/// # Errors
/// The file or a key cannot be read, or is wrong (the message names the
/// channel and the field, never key material).
pub fn from_config(
    cfg: &crate::server::ServerConfig,
    http_addr: std::net::SocketAddr,
) -> Result<Channels, String> {
    let mut all = Vec::new();
    if let Some(path) = &cfg.channels {
        // Keys never enter the data dir: the operator's no more than the
        // sandbox's.
        let vet = |key: &std::path::Path| {
            crate::secret_file::outside_data_dir(key, &cfg.data_dir, "the key file")
        };
        all.extend(otc_gateway::load_channels_vetted(path, &vet)?);
    }
    if cfg.sandbox_channels {
        // Keys never enter the data dir.
        crate::secret_file::outside_data_dir(&cfg.sandbox_dir, &cfg.data_dir, "--sandbox-dir")?;
        let file = otc_gateway::sandbox::create(&cfg.sandbox_dir)?;
        all.extend(otc_gateway::load_channels(&file)?);
    }
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    let channels = Channels::new(all, &public_url)?;
    for c in channels.iter() {
        tracing::info!(
            channel = %c.name(),
            provider = %c.provider(),
            notify_url = %channels.notify_url(c.name()),
            "payment channel ready"
        );
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(data: &std::path::Path, extra: &[&str]) -> crate::server::ServerConfig {
        let data = data.display().to_string();
        let mut args = vec!["otcd", "--data-dir", &data];
        args.extend_from_slice(extra);
        crate::server::ServerConfig::try_parse_from(args).expect("flags")
    }

    /// Keys never enter the data dir: the operator's channels whose key
    /// files are there are refused, naming the field, as is a sandbox
    /// there; the same channels beside it load.
    #[test]
    fn key_files_inside_the_data_dir_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let inside = otc_gateway::sandbox::create(&data.join("keys")).expect("keys");
        let flag = inside.display().to_string();
        let e = from_config(&config(&data, &["--channels", &flag]), addr)
            .err()
            .expect("key files in the data dir");
        assert!(
            e.contains("the key file") && e.contains("inside the data dir"),
            "{e}"
        );
        let beside = otc_gateway::sandbox::create(&dir.path().join("keys")).expect("keys");
        let flag = beside.display().to_string();
        let channels = from_config(&config(&data, &["--channels", &flag]), addr).expect("beside");
        assert_eq!(channels.iter().count(), 3);
        let sandbox = data.join("sandbox").display().to_string();
        let e = from_config(
            &config(&data, &["--sandbox-channels", "--sandbox-dir", &sandbox]),
            addr,
        )
        .err()
        .expect("a sandbox in the data dir");
        assert!(e.contains("--sandbox-dir"), "{e}");
    }
}
