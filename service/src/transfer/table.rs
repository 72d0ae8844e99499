//! A file's rows as typed cells (`Cell`), produced once by the exports and reports and
//! written out as CSV text (`csv`) or as an Excel workbook (`xlsx`). A `Table` is a whole
//! file in the making: its name, its header, and its rows a page at a time, so neither
//! writer holds more than a page whatever the row count.
use crate::error::AppResult;
use crate::transfer::export::Export;
use crate::transfer::report::Grades;
use chrono::{DateTime, NaiveDate, Utc};
use std::borrow::Cow;

/// One cell, typed: a spreadsheet shows a number as a number and a date as a date.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    /// An exact decimal as text (an amount, `"-12.50"`; a percentage, `"12.50"`): CSV
    /// writes it as is, a workbook as a number shown with as many decimals.
    Decimal(String),
    Date(NaiveDate),
    /// An instant, UTC: `2026-12-06T09:30:00Z` in CSV, a date-time in a workbook.
    Time(DateTime<Utc>),
    Bool(bool),
}

impl Cell {
    /// The cell as CSV text, before quoting.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Cell::Empty => Cow::Borrowed(""),
            Cell::Text(s) | Cell::Decimal(s) => Cow::Borrowed(s),
            Cell::Int(n) => Cow::Owned(n.to_string()),
            Cell::Date(d) => Cow::Owned(d.to_string()),
            Cell::Time(t) => Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            Cell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }

    /// A text cell from anything displayable; None is an empty cell.
    pub fn of<T: ToString>(value: Option<T>) -> Cell {
        value.map_or(Cell::Empty, |v| Cell::Text(v.to_string()))
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<NaiveDate> for Cell {
    fn from(d: NaiveDate) -> Self {
        Cell::Date(d)
    }
}

impl From<DateTime<Utc>> for Cell {
    fn from(t: DateTime<Utc>) -> Self {
        Cell::Time(t)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

/// One line of a file.
pub type Row = Vec<Cell>;

/// Where a table's later rows come from.
pub(crate) enum Rest {
    /// Every row was read at once.
    Done,
    Export(Box<Export>),
    Grades(Grades),
}

/// A file in the making: a report or an export, checked and started (a bad parameter or a
/// missing grant was an error before any row), with the rows read so far.
pub struct Table {
    name: String,
    header: Vec<String>,
    ready: Option<Vec<Row>>,
    rest: Rest,
}

impl Table {
    pub(crate) fn new(name: impl Into<String>, header: Vec<String>, ready: Vec<Row>, rest: Rest) -> Table {
        Table { name: name.into(), header, ready: Some(ready), rest }
    }

    /// The file's name without its extension (`customers`, `classification`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Rows already read, if any are waiting: they need no database read.
    pub fn take_ready(&mut self) -> Option<Vec<Row>> {
        self.ready.take()
    }

    /// The next page of rows; None once every row was returned. Call `take_ready` first.
    ///
    /// # Errors
    /// Database errors (the file cannot be finished).
    pub async fn read_more(&mut self) -> AppResult<Option<Vec<Row>>> {
        if let Some(rows) = self.ready.take() {
            return Ok(Some(rows));
        }
        match &mut self.rest {
            Rest::Done => Ok(None),
            Rest::Export(export) => export.next_chunk().await,
            Rest::Grades(grades) => grades.next_chunk().await,
        }
    }

    /// Ends the table early (after an error was sent).
    pub fn stop(&mut self) {
        self.ready = None;
        self.rest = Rest::Done;
    }
}
