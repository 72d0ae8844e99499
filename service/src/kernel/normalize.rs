//! Duplicate keys: phone numbers to E.164 (+86 default region), e-mail addresses
//! lower-cased, organization names folded so that spelling variants collide.
use crate::kernel::types::{Email, Phone};

/// Normalizes a phone number to E.164. Numbers without a country code are read as
/// mainland China: 11-digit mobiles (1xx) and landlines with their trunk `0` and area code.
///
/// # Errors
/// A message saying why the number cannot be a phone number.
pub fn phone_e164(raw: &str) -> Result<Phone, String> {
    phone_text(raw).map(Phone::new_unchecked)
}

fn phone_text(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let mut digits = String::with_capacity(trimmed.len());
    let mut plus = false;
    for (i, c) in fold_width(trimmed).chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '(' | ')' | '.' | '/' => {}
            _ => return Err(format!("unexpected character '{c}' in phone number")),
        }
    }
    if !plus && let Some(rest) = digits.strip_prefix("00") {
        digits = rest.to_string();
        plus = true;
    }
    let e164 = if plus {
        digits
    } else if digits.len() == 11 && digits.starts_with('1') {
        format!("86{digits}")
    } else if digits.len() == 13 && digits.starts_with("861") {
        digits
    } else if digits.starts_with('0') && (10..=12).contains(&digits.len()) {
        format!("86{}", &digits[1..])
    } else {
        return Err("not a phone number: give a mobile number, a landline with area code, or +country code".into());
    };
    if e164.starts_with('0') || !(8..=15).contains(&e164.len()) {
        return Err("not a phone number: E.164 numbers have 8 to 15 digits".into());
    }
    if let Some(national) = e164.strip_prefix("86") {
        // Mobiles are 13x-19x; a national number starting 10 is a Beijing landline (010).
        let mobile = national.starts_with('1') && !national.starts_with("10");
        if mobile && national.len() != 11 {
            return Err("a Chinese mobile number has 11 digits".into());
        }
        if !mobile && !(9..=11).contains(&national.len()) {
            return Err("a Chinese landline needs its area code".into());
        }
    }
    Ok(format!("+{e164}"))
}

/// Lower-cases and checks an e-mail address.
///
/// # Errors
/// A message when the address is not of the form local@domain.
pub fn email(raw: &str) -> Result<Email, String> {
    email_text(raw).map(Email::new_unchecked)
}

fn email_text(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    let valid = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && (domain.contains('.') || domain == "localhost")
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid && e.len() <= 254 { Ok(e) } else { Err("not an e-mail address".into()) }
}

/// Company-form suffixes dropped from organization names, longest first.
const COMPANY_SUFFIXES: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "集团公司",
    "集团",
    "公司",
    "corporation",
    "limited",
    "company",
    "co.,ltd.",
    "co.,ltd",
    "co.ltd",
    "ltd.",
    "ltd",
    "inc.",
    "inc",
    "corp.",
    "corp",
    "llc",
    "gmbh",
    "co.",
];

/// Folds an organization name to its duplicate key: full-width to half-width, lower case,
/// no spaces or brackets, company-form suffixes removed (repeatedly: "集团有限公司").
pub fn org_name(raw: &str) -> String {
    let mut s: String = fold_width(raw)
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '·' | '-' | '_' | '"' | '\''))
        .collect();
    s = s.trim_end_matches([',', '.']).to_string();
    loop {
        let before = s.len();
        for suffix in COMPANY_SUFFIXES {
            if s.len() > suffix.len()
                && let Some(rest) = s.strip_suffix(suffix)
            {
                s = rest.trim_end_matches([',', '.']).to_string();
                break;
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to half-width.
pub fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_e164() {
        assert_eq!(phone_e164("138 0013 8000").unwrap(), "+8613800138000");
        assert_eq!(phone_e164("+86 138-0013-8000").unwrap(), "+8613800138000");
        assert_eq!(phone_e164("008613800138000").unwrap(), "+8613800138000");
        assert_eq!(phone_e164("8613800138000").unwrap(), "+8613800138000");
        assert_eq!(phone_e164("１３８００１３８０００").unwrap(), "+8613800138000");
        assert_eq!(phone_e164("(010) 6552-9988").unwrap(), "+861065529988");
        assert_eq!(phone_e164("0755-8888 6666").unwrap(), "+8675588886666");
        assert_eq!(phone_e164("+1 (415) 555-2671").unwrap(), "+14155552671");
    }

    #[test]
    fn bad_phones_are_refused() {
        for bad in ["", "12345", "6552 9988", "1380013800", "+86 138001380001", "abc", "138x00138000"] {
            assert!(phone_e164(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn emails_lowercase() {
        assert_eq!(email(" Li.Na@Example.COM ").unwrap(), "li.na@example.com");
        for bad in ["", "a@b", "@b.cn", "a b@c.cn", "a@.cn", "a@@b.cn"] {
            assert!(email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn organization_names_fold() {
        let key = org_name("上海华联商贸有限公司");
        assert_eq!(key, "上海华联商贸");
        assert_eq!(org_name("上海华联商贸 有限公司"), key);
        assert_eq!(org_name("上海华联商贸（集团）有限公司"), "上海华联商贸");
        assert_eq!(org_name("上海华联商贸股份有限公司"), key);
        assert_eq!(org_name("ＡＢＣ Trading Co., Ltd."), "abctrading");
        assert_eq!(org_name("abc trading"), "abctrading");
        assert!(!org_name("有限公司").is_empty(), "a name never folds to nothing");
        assert_eq!(phone_e164("010-6552 9988").unwrap(), "+861065529988");
    }
}
