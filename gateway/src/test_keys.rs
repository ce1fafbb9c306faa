//! RSA keys for the unit tests, generated once per test binary.

use std::sync::OnceLock;

use rsa::RsaPrivateKey;

/// Bits of every test key: the production minimum.
const TEST_KEY_BITS: usize = 2048;

/// Distinct key pairs, each playing one part.
pub(crate) struct TestKeys {
    /// Alipay's gateway key: signs notifications.
    pub(crate) alipay_gateway: RsaPrivateKey,
    /// The merchant app's key: signs page-pay requests.
    pub(crate) app: RsaPrivateKey,
    /// The WeChat Pay platform key: signs notifications.
    pub(crate) platform: RsaPrivateKey,
    /// Nobody's: signatures made with it must be refused.
    pub(crate) stranger: RsaPrivateKey,
}

/// The keys, generated on first use (in parallel: 2048-bit keygen is slow).
pub(crate) fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let generate = || RsaPrivateKey::new(&mut rand::rngs::OsRng, TEST_KEY_BITS);
        std::thread::scope(|scope| {
            let handles = [(); 4].map(|()| scope.spawn(generate));
            let [a, b, c, d] = handles.map(|h| {
                h.join()
                    .expect("keygen thread")
                    .expect("RSA key generation")
            });
            TestKeys {
                alipay_gateway: a,
                app: b,
                platform: c,
                stranger: d,
            }
        })
    })
}

/// The tests' `now`: 2024-05-01 12:00:00 UTC (20:00 in Beijing).
pub(crate) fn test_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_714_564_800, 0).expect("valid time")
}
