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
        if let Some(why) = control_in(value, true) {
            return Err(Rejection::field(field, why));
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

/// Why `value` may not be stored, if it holds a control character: one that
/// does nothing in text but move a terminal's cursor, hide what follows or
/// end a C string (C0 and C1 controls and DEL). Tab, line feed and carriage
/// return pass in text of several `lines` (chat, reasons, terms); a name,
/// account or reference takes none.
pub(crate) fn control_in(value: &str, lines: bool) -> Option<String> {
    let c = value
        .chars()
        .find(|&c| c.is_control() && !(lines && matches!(c, '\t' | '\n' | '\r')))?;
    Some(format!(
        "must not hold control characters (found U+{:04X})",
        u32::from(c)
    ))
}

#[cfg(test)]
mod tests {
    use super::control_in;

    #[test]
    fn control_characters_are_named_and_lines_pass_in_text() {
        assert_eq!(control_in("王芳 wang@example.com", false), None);
        assert_eq!(control_in("line one\r\n\tline two", true), None);
        assert_eq!(
            control_in("a\nb", false).as_deref(),
            Some("must not hold control characters (found U+000A)")
        );
        for c in ['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}'] {
            assert!(control_in(&format!("x{c}y"), true).is_some(), "{c:?}");
        }
        // Bidi marks are shown to CS as markers, not refused: names in
        // right-to-left scripts use them.
        assert_eq!(control_in("\u{200f}\u{202e}", false), None);
    }
}
