//! SQL building blocks. Queries go through sea-query's builders; the few raw statements
//! left are the measured bulk paths of a full reclassification (one JSON document per
//! statement on SQLite, `UPDATE ... FROM (VALUES ...)` on PostgreSQL), and they bind
//! every value through [`Binds`], which writes each placeholder in the backend's syntax
//! as the value is bound (nothing is rewritten afterwards).
use sea_orm::sea_query::{Alias, Expr, Func, IntoCondition};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

/// The bound values of a raw statement.
pub struct Binds {
    backend: DatabaseBackend,
    values: Vec<Value>,
}

impl Binds {
    pub fn new(db: &impl ConnectionTrait) -> Self {
        Binds { backend: db.get_database_backend(), values: Vec::new() }
    }

    /// Binds a value; returns its placeholder (`$n` on PostgreSQL, `?` on SQLite).
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DatabaseBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_string(),
        }
    }

    /// Binds several values; returns their placeholders joined by commas.
    pub fn bind_all<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> String {
        values.into_iter().map(|v| self.bind(v)).collect::<Vec<_>>().join(", ")
    }

    /// The statement with these values.
    pub fn statement(self, sql: impl Into<String>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql.into(), self.values)
    }
}

/// `CAST(SUM(CASE WHEN cond THEN value ELSE 0 END) AS BIGINT)`: a conditional total that
/// both databases return as a 64-bit integer.
pub fn sum_when(cond: impl IntoCondition, value: impl Into<Expr>) -> Expr {
    Func::cast_as(Func::sum(Expr::case(cond, value).finally(0)), Alias::new("BIGINT")).into()
}

/// `CAST(expr AS BIGINT)`.
pub fn bigint(expr: impl Into<Expr>) -> Expr {
    Func::cast_as(expr, Alias::new("BIGINT")).into()
}

/// `COUNT(*)`.
pub fn count_all() -> Expr {
    Func::count(Expr::col(sea_orm::sea_query::Asterisk)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let mut pg = Binds { backend: DatabaseBackend::Postgres, values: Vec::new() };
        assert_eq!(pg.bind(1), "$1");
        assert_eq!(pg.bind_all(["a", "b"]), "$2, $3");
        let mut lite = Binds { backend: DatabaseBackend::Sqlite, values: Vec::new() };
        assert_eq!(lite.bind_all([1, 2]), "?, ?");
        // A `?` inside a literal is left alone: nothing is rewritten after the fact.
        let stmt = pg.statement("SELECT '?' || $1");
        assert_eq!(stmt.sql, "SELECT '?' || $1");
        assert_eq!(stmt.values.map(|v| v.0.len()), Some(3));
    }
}
