//! SeaORM entities of the CRM: one module per table, string-backed enums in `enums`.
//! This crate knows nothing of GraphQL or HTTP.

pub mod api_key;
pub mod api_key_grant;
pub mod audit_log;
pub mod care_policy;
pub mod care_run;
pub mod category;
pub mod classification_history;
pub mod classification_policy;
pub mod classification_run;
pub mod consent;
pub mod contact;
pub mod customer;
pub mod deal;
pub mod deal_line_item;
pub mod department;
pub mod duplicate_report;
pub mod enums;
pub mod exchange_rate;
pub mod feedback;
pub mod holiday;
pub mod idempotency_key;
pub mod import_line;
pub mod import_run;
pub mod interaction;
pub mod login_throttle;
pub mod message_template;
pub mod prelude;
pub mod refresh_token;
pub mod reminder;
pub mod role_permission;
pub mod setting;
pub mod user;
