//! Checking a command's fields against the configuration: assets and fiats
//! traded here, amounts at their scale and maximum, texts, windows. Each
//! refusal names the field as the wire does.

use crate::engine::Engine;
use crate::money::{Asset, AssetSpec, CoinAmount, Fiat, FiatAmount, FiatSpec, Price};
use crate::rejection::Rejection;

impl Engine {
    pub(crate) fn asset_spec(&self, asset: Asset) -> Result<AssetSpec, Rejection> {
        self.config
            .assets
            .get(&asset)
            .copied()
            .ok_or(Rejection::UnknownAsset(asset))
    }

    pub(crate) fn fiat_spec(&self, fiat: Fiat) -> Result<FiatSpec, Rejection> {
        self.config
            .fiats
            .get(&fiat)
            .copied()
            .ok_or(Rejection::UnknownFiat(fiat))
    }

    pub(crate) fn coin_arg(
        &self,
        field: &'static str,
        value: rust_decimal::Decimal,
        asset: Asset,
    ) -> Result<CoinAmount, Rejection> {
        let spec = self.asset_spec(asset)?;
        CoinAmount::new(value, &spec).map_err(|e| Rejection::amount(field, e))
    }

    pub(crate) fn fiat_arg(
        &self,
        field: &'static str,
        value: rust_decimal::Decimal,
        fiat: Fiat,
    ) -> Result<FiatAmount, Rejection> {
        let spec = self.fiat_spec(fiat)?;
        FiatAmount::new(value, &spec).map_err(|e| Rejection::amount(field, e))
    }

    pub(crate) fn price_arg(
        &self,
        field: &'static str,
        value: rust_decimal::Decimal,
        fiat: Fiat,
    ) -> Result<Price, Rejection> {
        let spec = self.fiat_spec(fiat)?;
        Price::new(value, &spec).map_err(|e| Rejection::amount(field, e))
    }

    /// Checks a free-text field: at most the configured characters, and not
    /// blank when `required`.
    pub(crate) fn text_arg(
        &self,
        field: &'static str,
        value: &str,
        required: bool,
    ) -> Result<(), Rejection> {
        self.text_arg_max(field, value, required, self.config.text_chars_max)
    }

    /// [`Engine::text_arg`] with its own limit (chat has its own setting).
    pub(crate) fn text_arg_max(
        &self,
        field: &'static str,
        value: &str,
        required: bool,
        max: usize,
    ) -> Result<(), Rejection> {
        if required && value.trim().is_empty() {
            return Err(Rejection::field(field, "must not be empty"));
        }
        if value.chars().count() > max {
            return Err(Rejection::field(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        Ok(())
    }

    /// Checks a window in milliseconds lies in `[min, max]`.
    pub(crate) fn window_arg(
        field: &'static str,
        ms: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, Rejection> {
        if ms < min || ms > max {
            return Err(Rejection::field(
                field,
                format!("must be between {} and {} seconds", min / 1000, max / 1000),
            ));
        }
        Ok(ms)
    }
}
