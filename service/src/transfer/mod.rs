//! Records in and out as files: CSV imports (decoding, header mapping, matching, writing
//! through the record services) and exports of the records (`export`), in CSV (`csv`).
pub mod csv;
pub mod export;
pub mod import;
pub mod report;
