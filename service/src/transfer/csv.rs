//! CSV text as spreadsheets read it: cells quoted when needed, never read as a formula
//! (cells starting with = + - @ are prefixed with ', except a negative number such as an NPS
//! of -100, which stays a number for pandas, DuckDB and Excel), lines ending in CRLF. A cell holding
//! `;` or a tab is quoted too: a spreadsheet that splits on those (the `;` of European
//! and some Chinese locales) would otherwise start a new cell, and a formula, inside it.

/// One CSV cell: quoted when needed, and never read as a formula by a spreadsheet.
pub fn cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_negative_number(value) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r', ';', '\t']) || guarded.starts_with(' ') || guarded.ends_with(' ') {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// `-` then digits with at most one decimal point (`-100`, `-0.5`): what a spreadsheet reads
/// as a negative number and nothing else. An exponent, a `+` (a phone such as `+86 138...`)
/// or anything after the digits keeps the guard.
fn is_negative_number(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('-') else { return false };
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty() && digits(whole) && digits(fraction) && !(rest.contains('.') && fraction.is_empty())
}

/// One CSV line with its CRLF.
pub fn line<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let mut out = cells.into_iter().map(|c| cell(c.as_ref())).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("华东"), "华东");
        assert_eq!(cell("a;=HYPERLINK(\"x\")"), "\"a;=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("a\t+1"), "\"a\t+1\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+86 138"), "'+86 138");
        assert_eq!(cell("-5"), "-5");
        assert_eq!(cell("-100"), "-100");
        assert_eq!(cell("-0.25"), "-0.25");
        assert_eq!(cell("-5."), "'-5.");
        assert_eq!(cell("-.5"), "'-.5");
        assert_eq!(cell("-1+1"), "'-1+1");
        assert_eq!(cell("-1e3"), "'-1e3");
        assert_eq!(cell("-"), "'-");
        assert_eq!(cell("-2-3"), "'-2-3");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(line(["a", "b"]), "a,b\r\n");
    }
}
