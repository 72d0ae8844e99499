//! Records in and out as files: CSV imports (decoding, header mapping, matching, writing
//! through the record services), exports of the records (`export`) and the report files
//! (`report`), both as typed rows (`table`) written as CSV (`csv`) or .xlsx (`xlsx`).
pub mod csv;
pub mod export;
pub mod import;
pub mod report;
pub mod table;
pub mod xlsx;

/// A true/false query parameter of a file route (`dryRun`, `bom`): absent is false, present
/// without a value is true, `true`/`1`/`false`/`0` in any case.
///
/// # Errors
/// VALIDATION naming the parameter for anything else.
pub fn flag(params: &std::collections::HashMap<String, String>, name: &str) -> crate::error::AppResult<bool> {
    match params.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(_) => Err(crate::error::AppError::invalid(name, "must be true or false")),
    }
}
