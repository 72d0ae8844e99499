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

/// How a CSV file is written out (`?bom=true`, `?encoding=gb18030` on every CSV route):
/// UTF-8 by default; with a byte order mark for Excel, which otherwise reads UTF-8 as the
/// system's code page (mojibake on a Chinese Windows); or GB18030, that code page itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileFormat {
    pub gb18030: bool,
    pub bom: bool,
}

impl FileFormat {
    /// Reads `bom` (true/false) and `encoding` (utf-8, gb18030; GBK names the same).
    ///
    /// # Errors
    /// VALIDATION naming the parameter.
    pub fn from_params(params: &std::collections::HashMap<String, String>) -> crate::error::AppResult<FileFormat> {
        use crate::error::AppError;
        let bom = super::flag(params, "bom")?;
        let gb18030 = match params.get("encoding").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "utf-8" || v == "utf8" => false,
            Some(v) if v == "gb18030" || v == "gbk" => true,
            Some(_) => return Err(AppError::invalid("encoding", "must be utf-8 or gb18030")),
        };
        if bom && gb18030 {
            return Err(AppError::invalid("bom", "a byte order mark is for UTF-8 files; GB18030 files have none"));
        }
        Ok(FileFormat { gb18030, bom })
    }

    /// The `Content-Type` of such a file.
    pub fn content_type(self) -> &'static str {
        if self.gb18030 { "text/csv; charset=gb18030" } else { "text/csv; charset=utf-8" }
    }

    /// A piece of the file (whole lines) as bytes; `first` is the file's first piece.
    pub fn encode(self, text: String, first: bool) -> Vec<u8> {
        if self.gb18030 {
            // GB18030 maps every Unicode character: nothing is replaced.
            return encoding_rs::GB18030.encode(&text).0.into_owned();
        }
        if self.bom && first {
            let mut out = Vec::with_capacity(text.len() + 3);
            out.extend_from_slice(b"\xEF\xBB\xBF");
            out.extend_from_slice(text.as_bytes());
            return out;
        }
        text.into_bytes()
    }
}

/// A row of typed cells as one CSV line with its CRLF: numbers, dates and times as they are
/// (a number is never a formula), text through `cell`.
pub fn row(cells: &[super::table::Cell]) -> String {
    use super::table::Cell;
    join(cells.iter().map(|c| match c {
        Cell::Text(s) => cell(s).into(),
        other => other.text(),
    }))
}

/// The lines of many rows.
pub fn rows(rows: &[super::table::Row]) -> String {
    rows.iter().map(|r| row(r)).collect()
}

/// One CSV line of text cells with its CRLF.
pub fn line<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    join(cells.into_iter().map(|c| cell(c.as_ref()).into()))
}

/// Cells already quoted and guarded, joined into a line.
fn join<'a>(cells: impl Iterator<Item = std::borrow::Cow<'a, str>>) -> String {
    let mut out = String::new();
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&c);
    }
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
        use crate::transfer::table::Cell;
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let typed = [Cell::Int(-100), Cell::Decimal("-0.50".into()), Cell::Text("-1".into()), Cell::Date(date)];
        assert_eq!(row(&typed), "-100,-0.50,-1,2026-12-06\r\n");
        assert_eq!(row(&[Cell::Text("=1".into()), Cell::Empty, Cell::Bool(true)]), "'=1,,true\r\n");
    }

    #[test]
    fn files_are_written_in_the_format_asked_for() {
        let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let utf8 = FileFormat::from_params(&params(&[])).unwrap();
        assert_eq!(utf8.encode("名称\r\n".into(), true), "名称\r\n".as_bytes());
        let bom = FileFormat::from_params(&params(&[("bom", "true")])).unwrap();
        assert_eq!(&bom.encode("名称\r\n".into(), true)[..3], b"\xEF\xBB\xBF");
        assert_eq!(bom.encode("x".into(), false), b"x", "the mark starts the file only");
        let gb = FileFormat::from_params(&params(&[("encoding", "GB18030")])).unwrap();
        assert_eq!(gb.encode("名称".into(), true), [0xC3, 0xFB, 0xB3, 0xC6]);
        assert_eq!(gb.content_type(), "text/csv; charset=gb18030");
        for bad in
            [&[("bom", "yes please")][..], &[("encoding", "latin1")], &[("bom", "true"), ("encoding", "gb18030")]]
        {
            assert!(FileFormat::from_params(&params(bad)).is_err(), "{bad:?}");
        }
    }
}
