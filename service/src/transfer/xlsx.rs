//! A table (`table`) as an Excel workbook: one sheet named after the file, a bold header
//! row kept in view, and typed cells (numbers as numbers with their decimals, dates as
//! dates, times as UTC date-times, text as text: a workbook cell written as a string is
//! never a formula, so no guard is needed). The sheet is written a row at a time into a
//! temporary file (`rust_xlsxwriter`'s constant memory mode) and zipped into another
//! temporary file at the end: memory stays flat whatever the row count.
use crate::error::{AppError, AppResult};
use crate::transfer::table::{Cell, Row};
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use std::io::{Seek, SeekFrom};

/// Rows a worksheet holds, the header's included.
const MAX_ROWS: u32 = 1_048_576;
/// Characters a worksheet cell holds.
const MAX_TEXT: usize = 32_767;
/// Decimals a number format is made for (amounts have at most 4).
const MAX_DECIMALS: usize = 6;

/// The `Content-Type` of a workbook.
pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn fail(e: XlsxError) -> AppError {
    AppError::internal(e)
}

/// A workbook being written.
pub struct Sheet {
    workbook: Workbook,
    /// The next row to write.
    row: u32,
    /// The header's width in characters, per column.
    titles: Vec<usize>,
    widths_set: bool,
    date: Format,
    time: Format,
    /// `0`, `0.0`, `0.00`, ... by number of decimals.
    decimals: Vec<Format>,
}

impl Sheet {
    /// A workbook with one sheet called `name` and its header row.
    ///
    /// # Errors
    /// INTERNAL when the workbook cannot be written (no temporary file).
    pub fn new(name: &str, header: &[String]) -> AppResult<Sheet> {
        let mut workbook = Workbook::new();
        let bold = Format::new().set_bold();
        let sheet = workbook.add_worksheet_with_constant_memory().map_err(fail)?;
        // Sheet names are at most 31 characters without []:*?/\ ; ours are file names.
        let title: String = name.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
        if !title.is_empty() {
            sheet.set_name(title).map_err(fail)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(fail)?;
        for (col, title) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col_num(col)?, title, &bold).map_err(fail)?;
        }
        let decimals = (0..=MAX_DECIMALS)
            .map(|n| {
                Format::new().set_num_format(if n == 0 { "0".to_string() } else { format!("0.{}", "0".repeat(n)) })
            })
            .collect();
        Ok(Sheet {
            workbook,
            row: 1,
            titles: header.iter().map(|h| h.chars().count()).collect(),
            widths_set: false,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            decimals,
        })
    }

    /// Column widths from the header and the first rows' types, so dates and times show
    /// whole (a too-narrow date column shows `#####`).
    fn set_widths(&mut self, rows: &[Row]) -> AppResult<()> {
        let sheet = self.workbook.worksheet_from_index(0).map_err(fail)?;
        for (col, title) in self.titles.iter().enumerate() {
            let widest = rows
                .iter()
                .take(100)
                .filter_map(|r| r.get(col))
                .map(|c| match c {
                    Cell::Time(_) => 20,
                    Cell::Date(_) => 11,
                    Cell::Text(s) => s.chars().count().min(40),
                    other => other.text().len(),
                })
                .max()
                .unwrap_or(0);
            let width = widest.max(*title).clamp(8, 40) + 1;
            sheet.set_column_width(col_num(col)?, width as f64).map_err(fail)?;
        }
        Ok(())
    }

    /// Appends rows below the ones written.
    ///
    /// # Errors
    /// VALIDATION when the file would pass a worksheet's 1,048,576 rows; INTERNAL when the
    /// temporary file cannot be written.
    pub fn push(&mut self, rows: &[Row]) -> AppResult<()> {
        if !self.widths_set && !rows.is_empty() {
            self.set_widths(rows)?;
            self.widths_set = true;
        }
        let Sheet { workbook, row, date, time, decimals, .. } = self;
        let sheet = workbook.worksheet_from_index(0).map_err(fail)?;
        for cells in rows {
            if *row >= MAX_ROWS {
                return Err(AppError::invalid(
                    "format",
                    "an .xlsx sheet holds at most 1,048,575 rows: narrow the filter or ask for .csv",
                ));
            }
            for (col, cell) in cells.iter().enumerate() {
                let col = col_num(col)?;
                let written = match cell {
                    Cell::Empty => continue,
                    Cell::Text(s) => sheet.write_string(*row, col, fit(s)),
                    Cell::Int(n) => sheet.write_number(*row, col, *n as f64),
                    Cell::Decimal(s) => match (s.parse::<f64>(), places(s)) {
                        (Ok(n), Some(places)) => sheet.write_number_with_format(*row, col, n, &decimals[places]),
                        // An exponent or more decimals than a format shows: Excel's General.
                        (Ok(n), None) => sheet.write_number(*row, col, n),
                        (Err(_), _) => sheet.write_string(*row, col, s),
                    },
                    Cell::Date(d) if *d < FIRST_DAY => sheet.write_string(*row, col, d.to_string()),
                    Cell::Date(d) => sheet.write_datetime_with_format(*row, col, d, date),
                    Cell::Time(t) if t.date_naive() < FIRST_DAY => sheet.write_string(*row, col, cell.text()),
                    Cell::Time(t) => sheet.write_datetime_with_format(*row, col, t.naive_utc(), time),
                    Cell::Bool(b) => sheet.write_boolean(*row, col, *b),
                };
                written.map_err(fail)?;
            }
            *row += 1;
        }
        Ok(())
    }

    /// The finished workbook, in a temporary file read from its start (deleted when closed).
    ///
    /// # Errors
    /// INTERNAL when it cannot be written.
    pub fn finish(mut self) -> AppResult<std::fs::File> {
        let mut file = tempfile::tempfile().map_err(AppError::internal)?;
        self.workbook.save_to_writer(&mut file).map_err(fail)?;
        file.seek(SeekFrom::Start(0)).map_err(AppError::internal)?;
        Ok(file)
    }
}

/// Excel counts a cell's length in UTF-16 units: a longer text is cut there (the CSV has it
/// whole), never split inside a character.
fn fit(s: &str) -> &str {
    let mut units = 0;
    for (at, c) in s.char_indices() {
        units += c.len_utf16();
        if units > MAX_TEXT {
            return &s[..at];
        }
    }
    s
}

/// The decimals of a plain decimal (`-12.50`: 2), if a number format shows them all.
fn places(s: &str) -> Option<usize> {
    if s.contains(['e', 'E']) {
        return None;
    }
    let places = s.split_once('.').map_or(0, |(_, f)| f.len());
    (places <= MAX_DECIMALS).then_some(places)
}

/// Excel's dates start at 1900-01-01 and its 1900 has a 29 February that never was, so its
/// serial numbers are right from 1900-03-01 on; earlier dates are written as text.
const FIRST_DAY: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(1900, 3, 1).expect("a date");

fn col_num(col: usize) -> AppResult<u16> {
    u16::try_from(col)
        .ok()
        .filter(|c| *c < 16_384)
        .ok_or_else(|| AppError::invalid("format", "too many columns for .xlsx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sheets are moved between the request's task and blocking threads.
    #[test]
    fn a_sheet_can_change_threads() {
        fn send<T: Send>() {}
        send::<Sheet>();
    }

    #[test]
    fn long_texts_exponents_and_old_dates_are_written_as_excel_reads_them() {
        let wide = "\u{20000}".repeat(20_000);
        assert_eq!(fit(&wide).encode_utf16().count(), MAX_TEXT - 1, "cut between characters");
        assert_eq!(fit("短文本"), "短文本");
        assert_eq!(places("-12.50"), Some(2));
        assert_eq!(places("7"), Some(0));
        assert_eq!(places("1e-300"), None);
        assert_eq!(places("123456789.123456789"), None);
        let header = vec!["when".to_string(), "note".to_string(), "x".to_string()];
        let mut sheet = Sheet::new("old", &header).unwrap();
        let old = chrono::NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        sheet.push(&[vec![Cell::Date(old), Cell::Text(wide), Cell::Decimal("1e-300".into())]]).unwrap();
        sheet.finish().unwrap();
    }

    #[test]
    fn a_sheet_past_excels_last_row_is_refused_as_validation() {
        let header = vec!["n".to_string()];
        let mut sheet = Sheet::new("big", &header).unwrap();
        sheet.row = MAX_ROWS;
        let err = sheet.push(&[vec![Cell::Int(1)]]).unwrap_err();
        assert_eq!(err.code(), "VALIDATION", "{err}");
    }

    #[test]
    fn a_workbook_is_a_zip_with_the_sheet() {
        let header = vec!["name".to_string(), "amount".to_string()];
        let mut sheet = Sheet::new("deals", &header).unwrap();
        sheet.push(&[vec![Cell::Text("=1+1".into()), Cell::Decimal("-12.50".into())]]).unwrap();
        let mut file = sheet.finish().unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        assert_eq!(&bytes[..2], b"PK", "a zip archive");
    }
}
