//! [`AppError`] as a GraphQL error: `extensions.code`, the invalid `fields` of a
//! VALIDATION error, the `key` and owning `department` of a DUPLICATE.
//!
//! async-graphql's blanket `From<T: Display> for Error` drops extensions, so a bare `?`
//! on an `AppError` would lose the code: resolvers end with `.gql()` ([`ResultExt`]).
//! (`AppError` lives in the service crate, so it gets a trait of this crate, [`IntoGql`],
//! rather than async-graphql's `ErrorExtensions`.)
use async_graphql::ErrorExtensions;
use service::error::{AppError, AppResult};

/// A service error as a GraphQL error with its code.
pub trait IntoGql {
    fn gql_error(&self) -> async_graphql::Error;
}

impl IntoGql for AppError {
    fn gql_error(&self) -> async_graphql::Error {
        if let Self::Internal(source) = self {
            tracing::error!(error = %source, source = ?source, "internal error");
        }
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                Self::Validation(fields) => {
                    let list: Vec<async_graphql::Value> = fields
                        .iter()
                        .map(|f| {
                            let mut obj = async_graphql::indexmap::IndexMap::new();
                            obj.insert(async_graphql::Name::new("field"), async_graphql::Value::from(f.field.clone()));
                            obj.insert(
                                async_graphql::Name::new("message"),
                                async_graphql::Value::from(f.message.clone()),
                            );
                            async_graphql::Value::Object(obj)
                        })
                        .collect();
                    ext.set("fields", async_graphql::Value::List(list));
                }
                Self::Duplicate { key, department, .. } => {
                    ext.set("key", *key);
                    if let Some(d) = department {
                        ext.set("department", d.clone());
                    }
                }
                Self::RateLimited { retry_after, .. } => ext.set("retryAfter", *retry_after),
                Self::Collided => {
                    ext.set("retryAfter", 1);
                    ext.set("collided", true);
                }
                _ => {}
            }
        })
    }
}

/// `.gql()` turns a service result into a resolver result keeping the code.
pub trait ResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> ResultExt<T> for AppResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.gql_error())
    }
}

/// Gives an error that carries no code (a parse or validation error, a limit of
/// async-graphql's own) the code of a client mistake, `BAD_REQUEST`. The transports
/// (`http.rs`, `ws.rs`, `views.rs`) pass every error through here before it goes out.
pub fn default_code(error: &mut async_graphql::ServerError) {
    let ext = error.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", "BAD_REQUEST");
    }
}
