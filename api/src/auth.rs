//! Bearer JWTs (SPEC §16): HS256 only, with `sub` (user UUID), `role` and
//! `exp`. `none`, other algorithms, expired, not-yet-valid, malformed and
//! wrongly signed tokens are all UNAUTHENTICATED.

use std::sync::Arc;

use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use otc_engine::UserId;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// What a caller may do (SPEC §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Their own account, listings, buys, trades, appeals.
    User,
    /// A user who is also a partner merchant.
    Merchant,
    /// Customer service: the console calls, any trade.
    Support,
    /// Read-only customer service.
    SupportViewer,
    /// Back office: deposits, withdrawals, merchant registration.
    Admin,
    /// A price feed: may set reference prices and nothing else (SPEC §22).
    PriceFeed,
}

impl Role {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Merchant => "merchant",
            Role::Support => "support",
            Role::SupportViewer => "support_viewer",
            Role::Admin => "admin",
            Role::PriceFeed => "price_feed",
        }
    }

    /// Parses a claim value.
    ///
    /// # Errors
    /// Unknown role names.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "user" => Role::User,
            "merchant" => Role::Merchant,
            "support" => Role::Support,
            "support_viewer" => Role::SupportViewer,
            "admin" => Role::Admin,
            "price_feed" => Role::PriceFeed,
            other => {
                return Err(format!(
                    "unknown role {}: use user, merchant, support, support_viewer, admin or price_feed",
                    otc_engine::shown(other)
                ));
            }
        })
    }
}

/// The token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's UUID.
    pub sub: String,
    /// The role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub user: UserId,
    /// As what.
    pub role: Role,
    /// The token's `exp` (Unix seconds): valid through this second. A
    /// stream opened with it ends there.
    pub expires: u64,
}

/// Verifies tokens with the configured secret.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    /// Tokens verified before (the whole token, signature included, is the
    /// key): the caller and the token's expiry. A client sends the same
    /// token on every call; its signature is checked once, its expiry on
    /// every call.
    verified: Arc<DashMap<String, Caller>>,
}

/// Verified tokens kept at most (then the cache starts over).
const VERIFIED_MAX: usize = 100_000;

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// An authenticator for HS256 tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
            verified: Arc::default(),
        }
    }

    /// Authenticates a request: the caller [`crate::gate`] found when the
    /// request came in, else from its `authorization` header.
    ///
    /// # Errors
    /// UNAUTHENTICATED, saying what is wrong with the token.
    pub fn caller<T>(&self, req: &tonic::Request<T>) -> Result<Caller, Status> {
        match req.extensions().get::<Caller>() {
            Some(c) => Ok(*c),
            None => self.caller_in(req.metadata().as_ref()),
        }
    }

    /// Authenticates a request from the `authorization` header in `headers`.
    ///
    /// # Errors
    /// UNAUTHENTICATED, saying what is wrong with the token.
    pub fn caller_in(&self, headers: &tonic::codegen::http::HeaderMap) -> Result<Caller, Status> {
        let header = headers.get("authorization").ok_or_else(|| {
            Status::unauthenticated(
                "missing authorization header: send \"authorization: Bearer <token>\"",
            )
        })?;
        let value = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("authorization header must be \"Bearer <token>\"")
            })?;
        self.verify(token.trim())
    }

    /// Verifies a bare token.
    ///
    /// # Errors
    /// UNAUTHENTICATED for expired, not-yet-valid, malformed, wrongly signed or
    /// wrong-algorithm tokens.
    pub fn verify(&self, token: &str) -> Result<Caller, Status> {
        // As jsonwebtoken decides, with no leeway: expired once `exp < now`.
        if let Some(hit) = self.verified.get(token) {
            let caller = *hit;
            if caller.expires >= now_secs() {
                return Ok(caller);
            }
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| Status::unauthenticated(format!("invalid token: {e}")))?;
        let user = crate::convert::user_uuid(&data.claims.sub).ok_or_else(|| {
            Status::unauthenticated("invalid token: sub must be a user UUID (not the nil UUID)")
        })?;
        let caller = Caller {
            user,
            role: data.claims.role,
            expires: data.claims.exp,
        };
        // (`nbf` was checked: it stays in the past.)
        if self.verified.len() >= VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.insert(token.to_owned(), caller);
        Ok(caller)
    }
}

/// Mints a token (development and tests; production tokens come from the
/// platform's login service).
///
/// # Errors
/// The claims cannot be encoded.
pub fn mint(secret: &[u8], user: uuid::Uuid, role: Role, ttl_secs: u64) -> Result<String, String> {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let claims = Claims {
        sub: user.to_string(),
        role,
        exp: now + ttl_secs,
        nbf: None,
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verified_once_is_still_checked_for_expiry_and_signature() {
        let auth = Authenticator::new(b"secret");
        let user = uuid::Uuid::new_v4();
        let good = mint(b"secret", user, Role::User, 60).unwrap();
        assert!(auth.verify(&good).is_ok());
        assert_eq!(auth.verified.len(), 1, "remembered");
        assert!(auth.verify(&good).is_ok(), "answered from the cache");
        // The same claims under another key are another token: checked in full.
        let forged = mint(b"other", user, Role::User, 60).unwrap();
        assert!(auth.verify(&forged).is_err());
        // A remembered token past its expiry is verified again (and refused).
        let caller = auth.verify(&good).unwrap();
        auth.verified.insert(
            "a.b.c".into(),
            Caller {
                expires: now_secs() - 1,
                ..caller
            },
        );
        assert!(auth.verify("a.b.c").is_err(), "an expired token is refused");
    }

    #[test]
    fn tokens_verify_and_bad_ones_are_refused() {
        let auth = Authenticator::new(b"secret");
        let user = uuid::Uuid::new_v4();
        let good = mint(b"secret", user, Role::Support, 60).unwrap();
        let c = auth.verify(&good).unwrap();
        assert_eq!((c.user, c.role), (UserId(user), Role::Support));
        assert!((now_secs() + 59..=now_secs() + 60).contains(&c.expires));
        let wrong_key = mint(b"other", user, Role::User, 60).unwrap();
        assert!(auth.verify(&wrong_key).is_err());
        assert!(auth.verify("not.a.token").is_err());
        // alg "none": header {"alg":"none","typ":"JWT"}.
        let claims = format!(r#"{{"sub":"{user}","role":"admin","exp":9999999999}}"#);
        let b64 = |s: &str| {
            use std::fmt::Write;
            // base64url without padding, minimal encoder for the test.
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    let _ = write!(out, "{}", A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert!(auth.verify(&none).is_err(), "alg none is refused");
        let expired = {
            let claims = Claims {
                sub: user.to_string(),
                role: Role::User,
                exp: 1,
                nbf: None,
                iat: None,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        assert!(auth.verify(&expired).is_err());
        let future = {
            let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
            let claims = Claims {
                sub: user.to_string(),
                role: Role::User,
                exp: now + 600,
                nbf: Some(now + 300),
                iat: None,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        assert!(auth.verify(&future).is_err(), "not yet valid");
        let hs512 = {
            let claims = Claims {
                sub: user.to_string(),
                role: Role::User,
                exp: 9_999_999_999,
                nbf: None,
                iat: None,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS512),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        assert!(auth.verify(&hs512).is_err(), "algorithm swaps are refused");
    }
}
