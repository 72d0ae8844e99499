//! Money as integer minor units plus an ISO 4217 code; decimal strings at the edge.
use crate::kernel::types::Currency;

/// Currencies we accept and their minor-unit exponents.
const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 2),
    ("HKD", 2),
    ("MOP", 2),
    ("TWD", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("SGD", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("THB", 2),
    ("MYR", 2),
    ("VND", 0),
    ("RUB", 2),
    ("INR", 2),
    ("AED", 2),
];

/// The default currency of a deal.
pub const DEFAULT_CURRENCY: &str = "CNY";

/// The minor-unit exponent of a supported currency code.
///
/// # Errors
/// A message when the code is not a supported ISO 4217 code.
pub fn exponent(currency: &str) -> Result<u32, String> {
    CURRENCIES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, e)| *e)
        .ok_or_else(|| format!("unsupported currency '{currency}' (ISO 4217, e.g. CNY)"))
}

/// Parses a non-negative decimal string ("80000", "80000.5", "80000.50") into minor units.
///
/// # Errors
/// A message when the string is not a decimal, has too many decimals or overflows.
pub fn parse_minor(amount: &str, currency: &str) -> Result<i64, String> {
    let exp = exponent(currency)?;
    let s = amount.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{amount}' is not a non-negative decimal amount"));
    }
    if frac.len() > exp as usize {
        return Err(format!("{currency} has {exp} decimal places"));
    }
    let scale = 10i64.pow(exp);
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|e| e.to_string())? * 10i64.pow(exp - frac.len() as u32)
    };
    int.parse::<i64>()
        .ok()
        .and_then(|i| i.checked_mul(scale))
        .and_then(|i| i.checked_add(frac_value))
        .filter(|m| *m <= MAX_MINOR)
        .ok_or_else(|| format!("amount too large (at most {})", format_minor(MAX_MINOR, currency)))
}

/// The largest amount one deal, line or filter may carry, in minor units (10^15: ten
/// trillion yuan). Sums of many of them stay far inside a 64-bit integer.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// Parses a non-negative decimal with at most `places` decimals into an integer scaled by
/// 10^places ("7.1" with 6 places is 7100000).
///
/// # Errors
/// A message when the string is not such a decimal.
pub fn parse_scaled(value: &str, places: u32) -> Result<i64, String> {
    let s = value.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > places as usize
    {
        return Err(format!("'{value}' is not a decimal with at most {places} places"));
    }
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|e| e.to_string())? * 10i64.pow(places - frac.len() as u32)
    };
    int.parse::<i64>()
        .ok()
        .and_then(|i| i.checked_mul(10i64.pow(places)))
        .and_then(|i| i.checked_add(frac_value))
        .ok_or_else(|| "too large".to_string())
}

/// Formats minor units as a decimal string with the currency's decimals.
pub fn format_minor(minor: i64, currency: &str) -> String {
    let exp = exponent(currency).unwrap_or(2);
    if exp == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(exp);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:0width$}", abs / scale as u64, abs % scale as u64, width = exp as usize)
}

/// Validates and upper-cases a currency code.
///
/// # Errors
/// A message when the code is not supported.
pub fn currency(code: &str) -> Result<Currency, String> {
    let c = code.trim().to_ascii_uppercase();
    exponent(&c).map(|_| Currency::new_unchecked(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_minor("80000.00", "CNY"), Ok(8_000_000));
        assert_eq!(parse_minor("80000", "CNY"), Ok(8_000_000));
        assert_eq!(parse_minor("0.5", "CNY"), Ok(50));
        assert_eq!(parse_minor("1200", "JPY"), Ok(1200));
        assert_eq!(format_minor(8_000_000, "CNY"), "80000.00");
        assert_eq!(format_minor(5, "CNY"), "0.05");
        assert_eq!(format_minor(1200, "JPY"), "1200");
    }

    #[test]
    fn refuses_bad_amounts() {
        for bad in ["", "-1", "1.234", "1e5", "abc", ".5", "99999999999999999999"] {
            assert!(parse_minor(bad, "CNY").is_err(), "{bad} accepted");
        }
        assert!(parse_minor("1.5", "JPY").is_err());
        assert!(currency("XXX").is_err());
        assert_eq!(currency("cny").map(String::from), Ok("CNY".into()));
    }
}
