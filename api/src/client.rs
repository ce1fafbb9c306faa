//! A gRPC client of the otc services, shared by `otcctl`, the end-to-end
//! tests and the load generator: the bearer-token interceptor, a channel
//! connected to a URL, and the service clients over an authenticated channel.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::proto::admin_service_client::AdminServiceClient;
use crate::proto::merchant_service_client::MerchantServiceClient;
use crate::proto::support_service_client::SupportServiceClient;
use crate::proto::trading_service_client::TradingServiceClient;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

/// A token that cannot be sent as header text (not visible ASCII).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token is not valid header text")]
pub struct InvalidToken;

impl Bearer {
    /// The interceptor for `token` (a JWT, without the `Bearer ` prefix).
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when the token is not valid header ASCII.
    pub fn new(token: &str) -> Result<Self, InvalidToken> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| InvalidToken)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel that sends a bearer token with every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("bad server URL: {0}")]
    BadUrl(#[source] tonic::codegen::http::uri::InvalidUri),
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Unreachable(#[source] tonic::transport::Error),
}

/// A channel connected to `url` (e.g. `http://127.0.0.1:50051`), giving up
/// on the connection after `timeout` when one is given.
///
/// # Errors
///
/// [`ConnectError::BadUrl`] for a URL that does not parse,
/// [`ConnectError::Unreachable`] when the connection fails.
pub async fn connect(url: &str, timeout: Option<Duration>) -> Result<Channel, ConnectError> {
    let mut endpoint = Channel::from_shared(url.to_owned()).map_err(ConnectError::BadUrl)?;
    if let Some(timeout) = timeout {
        endpoint = endpoint.connect_timeout(timeout);
    }
    endpoint.connect().await.map_err(ConnectError::Unreachable)
}

/// `channel` sending `token` with every call.
///
/// # Errors
///
/// [`InvalidToken`] when the token is not valid header ASCII.
pub fn authed(channel: Channel, token: &str) -> Result<Authed, InvalidToken> {
    Ok(InterceptedService::new(channel, Bearer::new(token)?))
}

/// The trading service (users) over `channel`, as `token`.
///
/// # Errors
///
/// [`InvalidToken`] when the token is not valid header ASCII.
pub fn trading(
    channel: Channel,
    token: &str,
) -> Result<TradingServiceClient<Authed>, InvalidToken> {
    authed(channel, token).map(TradingServiceClient::new)
}

/// The merchant service over `channel`, as `token`.
///
/// # Errors
///
/// [`InvalidToken`] when the token is not valid header ASCII.
pub fn merchant(
    channel: Channel,
    token: &str,
) -> Result<MerchantServiceClient<Authed>, InvalidToken> {
    authed(channel, token).map(MerchantServiceClient::new)
}

/// The support service (appeals, evidence, trades) over `channel`, as `token`.
///
/// # Errors
///
/// [`InvalidToken`] when the token is not valid header ASCII.
pub fn support(
    channel: Channel,
    token: &str,
) -> Result<SupportServiceClient<Authed>, InvalidToken> {
    authed(channel, token).map(SupportServiceClient::new)
}

/// The admin service (transfers, merchants) over `channel`, as `token`.
///
/// # Errors
///
/// [`InvalidToken`] when the token is not valid header ASCII.
pub fn admin(channel: Channel, token: &str) -> Result<AdminServiceClient<Authed>, InvalidToken> {
    authed(channel, token).map(AdminServiceClient::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_that_is_not_header_text_is_refused() {
        assert!(Bearer::new("abc.def.ghi").is_ok());
        assert_eq!(Bearer::new("line\nbreak").err(), Some(InvalidToken));
        assert_eq!(
            InvalidToken.to_string(),
            "the token is not valid header text"
        );
    }
}
