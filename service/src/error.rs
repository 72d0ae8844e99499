//! One error type for the whole API, each variant with a stable code. The GraphQL layer
//! turns it into `extensions.code` (`schema/error.rs`); the CSV routes into a status.
use sea_orm::{DbErr, SqlErr};

/// A field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Why a text with a NUL character is refused (PostgreSQL cannot store one; SQLite would,
/// and the two stores must agree).
pub const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Every failure a client can see.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `UNAUTHENTICATED`: no, bad, expired token, or an inactive user.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// `FORBIDDEN`: the record is visible but the action is not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// `NOT_FOUND`: absent, deleted, or outside the caller's read scope.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `VALIDATION`: every invalid field is listed in `extensions.fields`.
    #[error("invalid input: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// `DUPLICATE`: a unique key collided. Names the key and the owning department only.
    #[error("{message}")]
    Duplicate { key: &'static str, department: Option<String>, message: String },
    /// `CONFLICT`: a stale `version` or a state that forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// `BAD_REQUEST`: a malformed request (cursor, body, content type).
    #[error("{0}")]
    BadRequest(String),
    /// `RATE_LIMITED`: too many attempts or requests; `extensions.retryAfter` says in how
    /// many seconds to try again (HTTP 429 with `Retry-After` when the whole request is refused).
    #[error("{message}")]
    RateLimited { retry_after: u64, message: String },
    /// `TIMEOUT`: the request ran longer than the server allows; nothing it started was committed
    /// unless its response said so.
    #[error("{0}")]
    Timeout(String),
    /// `RATE_LIMITED` too (`retryAfter` 1): the write collided with another (a deadlock, a
    /// serialization failure, SQLite's busy timeout) and was rolled back whole. The
    /// transports send such a request again a few times before they answer with it.
    #[error("another write to the same records ran at the same time; nothing was written: send it again")]
    Collided,
    /// `INTERNAL`: logged with its source, shown only as "internal error".
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Errors are shared between DataLoader waiters; an internal source is kept as its message.
impl Clone for AppError {
    fn clone(&self) -> Self {
        match self {
            Self::Unauthenticated(m) => Self::Unauthenticated(m),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::NotFound(m) => Self::NotFound(m),
            Self::Validation(f) => Self::Validation(f.clone()),
            Self::Duplicate { key, department, message } => {
                Self::Duplicate { key, department: department.clone(), message: message.clone() }
            }
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::BadRequest(m) => Self::BadRequest(m.clone()),
            Self::RateLimited { retry_after, message } => {
                Self::RateLimited { retry_after: *retry_after, message: message.clone() }
            }
            Self::Timeout(m) => Self::Timeout(m.clone()),
            Self::Collided => Self::Collided,
            Self::Internal(source) => Self::Internal(source.to_string().into()),
        }
    }
}

/// Result of a service function.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// Wraps anything unexpected; the source is logged, never shown.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation(_) => "VALIDATION",
            Self::Duplicate { .. } => "DUPLICATE",
            Self::Conflict(_) => "CONFLICT",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::RateLimited { .. } | Self::Collided => "RATE_LIMITED",
            Self::Timeout(_) => "TIMEOUT",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Maps a unique violation to DUPLICATE by index name (PostgreSQL names the index,
    /// SQLite the columns), text PostgreSQL cannot store (a NUL character, from any input
    /// the validators do not see: a filter, a search) to VALIDATION, anything else to
    /// INTERNAL.
    pub fn from_db(e: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(msg)) = e.sql_err() {
            for (key, needles) in UNIQUE_KEYS {
                if needles.iter().any(|n| msg.contains(n)) {
                    return Self::Duplicate { key, department: None, message: format!("{key} already exists") };
                }
            }
        }
        if let DbErr::ConnectionAcquire(_) = e {
            // Every connection is taken: the request is refused before it did anything.
            tracing::warn!(error = %e, "no database connection free");
            metrics::counter!("crm_db_pool_timeouts_total").increment(1);
            metrics::counter!("crm_refused_total", "limit" => "db_pool").increment(1);
            return Self::RateLimited { retry_after: 1, message: "the server is busy; try again in a moment".into() };
        }
        let text = e.to_string();
        if text.contains("invalid byte sequence for encoding") && text.contains("0x00") {
            return Self::Validation(vec![FieldError::new("input", NUL_MESSAGE)]);
        }
        // A deadlock or serialization failure (PostgreSQL 40P01, 40001) or SQLite's busy
        // timeout: the transaction was rolled back whole, so sending it again is safe.
        if ["deadlock detected", "could not serialize access", "database is locked", "database table is locked"]
            .iter()
            .any(|t| text.contains(t))
        {
            tracing::warn!(error = %e, "a write collided with another and was rolled back");
            return Self::Collided;
        }
        Self::internal(e)
    }
}

/// Duplicate key name -> what identifies its violation in PostgreSQL and SQLite messages.
const UNIQUE_KEYS: &[(&str, &[&str])] = &[
    ("phone", &["uq_customer_phone_norm", "customer.phone_norm"]),
    ("email", &["uq_customer_email_norm", "customer.email_norm"]),
    ("idNumber", &["uq_contact_id_number", "contact.customer_id, contact.id_number_index"]),
    ("name", &["uq_customer_org_name_norm", "customer.name_norm"]),
    ("userEmail", &["uq_user_email", "user.email"]),
    ("departmentName", &["uq_department_parent_name", "department.parent_id, department.name"]),
    ("holiday", &["ux_holiday", "holiday.name, holiday.date"]),
    ("templateKey", &["message_template_pkey", "message_template.key"]),
    ("classificationRun", &["classification_run_pkey", "classification_run.id"]),
];

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        Self::from_db(e)
    }
}

/// Accumulates validation errors so one response lists every invalid field.
#[derive(Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records the error of a fallible check and yields its value.
    pub fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }

    pub fn into_result(self) -> AppResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(AppError::Validation(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::RuntimeErr;

    #[test]
    fn collisions_and_a_full_pool_are_retryable_not_internal() {
        let db = |m: &str| DbErr::Exec(RuntimeErr::Internal(m.into()));
        for text in [
            "error returned from database: deadlock detected",
            "could not serialize access due to concurrent update",
            "database is locked",
        ] {
            assert_eq!(AppError::from_db(db(text)).code(), "RATE_LIMITED", "{text}");
        }
        let pool = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        assert_eq!(AppError::from_db(pool).code(), "RATE_LIMITED");
        assert_eq!(AppError::from_db(db("syntax error")).code(), "INTERNAL");
    }
}
