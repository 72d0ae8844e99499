//! Records in and out as files: CSV imports (decoding, header mapping, matching, writing
//! through the record services) and, beside them, exports.
pub mod import;
