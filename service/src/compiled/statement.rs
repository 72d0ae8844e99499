//! The compiled path's statements as built: their `LIMIT`s written inline, and the ones
//! kept for the next request like them (`super::Compiler`).
use std::num::NonZeroUsize;
use std::sync::Arc;

/// How many built statements a server keeps (the least recently used going first), and
/// the most bytes one may take (key, text and values): 32 MB in all at most.
const KEPT: usize = 1024;
const KEPT_ONE: usize = 32 * 1024;

/// Built statements by their key.
pub(super) struct Kept {
    statements: lru::LruCache<String, Arc<Built>>,
}

impl Kept {
    pub(super) fn new() -> Kept {
        Kept { statements: lru::LruCache::new(NonZeroUsize::new(KEPT).unwrap_or(NonZeroUsize::MIN)) }
    }

    pub(super) fn get(&mut self, key: &str) -> Option<Arc<Built>> {
        self.statements.get(key).cloned()
    }

    /// Keeps `built` under `key` unless the two take more than [`KEPT_ONE`] bytes.
    pub(super) fn put(&mut self, key: String, built: Arc<Built>) {
        let statement = built.statement.as_ref();
        let size = key.len()
            + statement.map_or(0, |s| s.sql.len())
            + statement.and_then(|s| s.values.as_ref()).map_or(0, |v| v.0.iter().map(value_bytes).sum());
        if size <= KEPT_ONE {
            self.statements.put(key, built);
        }
    }
}

/// The bytes a bound value holds, roughly.
fn value_bytes(value: &sea_orm::Value) -> usize {
    use sea_orm::Value;
    16 + match value {
        Value::String(Some(s)) => s.len(),
        Value::Bytes(Some(b)) => b.len(),
        Value::Json(Some(j)) => j.to_string().len(),
        Value::Array(_, Some(a)) => a.iter().map(value_bytes).sum(),
        _ => 0,
    }
}

/// A statement as built, `None` when it would bind too many values (the ordinary path
/// answers).
pub(super) struct Built {
    pub(super) statement: Option<sea_orm::Statement>,
    /// Where a lookup's id goes among the values.
    pub(super) id_at: Vec<usize>,
}

/// The statement with its `LIMIT`s written as numbers instead of bound values (and the
/// other values renumbered).
///
/// PostgreSQL plans a prepared statement anew for each execution (a custom plan) until a
/// plan for any value (a generic plan) looks as cheap, and a generic plan of `LIMIT $1`
/// assumes a large limit: for a page of nested lists that means planning every request,
/// twice the time of running it (0.8 ms against 0.34 ms, BENCHMARKS.md). With the limits
/// in the text, a statement without other values has one plan, and one with a scope's
/// values soon settles on its generic plan. The text varies with the page sizes asked,
/// a handful in practice (each connection keeps its last 100 statements prepared).
pub(super) fn limits_inline(statement: sea_orm::Statement) -> sea_orm::Statement {
    use sea_orm::Value;
    let Some(values) = statement.values else { return statement };
    let sql = statement.sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut kept = Vec::with_capacity(values.0.len());
    let mut numbers: Vec<Option<usize>> = vec![None; values.0.len()];
    let (mut i, mut from) = (0, 0);
    let mut quote: Option<u8> = None;
    // In an `E'...'` literal (sea-query writes a string with a quote or a backslash so), a
    // backslash escapes the next byte.
    let mut escapes = false;
    while i < sql.len() {
        let b = sql[i];
        match quote {
            Some(_) if escapes && b == b'\\' => {
                i += 2;
                continue;
            }
            // '' and "" inside a literal or a name close and reopen it: no harm.
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => {
                escapes = b == b'\'' && i > 0 && matches!(sql[i - 1], b'E' | b'e');
                quote = Some(b);
            }
            None if b == b'$' && sql.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = (i + 1..sql.len()).find(|&j| !sql[j].is_ascii_digit()).unwrap_or(sql.len());
                let n = statement.sql[i + 1..end].parse::<usize>().ok().filter(|n| (1..=values.0.len()).contains(n));
                if let Some(n) = n {
                    out.push_str(&statement.sql[from..i]);
                    let limit = match &values.0[n - 1] {
                        Value::BigUnsigned(Some(v)) if statement.sql[..i].ends_with(" LIMIT ") => Some(*v),
                        _ => None,
                    };
                    match limit {
                        Some(v) => out.push_str(&v.to_string()),
                        None => {
                            let number = *numbers[n - 1].get_or_insert_with(|| {
                                kept.push(values.0[n - 1].clone());
                                kept.len()
                            });
                            out.push('$');
                            out.push_str(&number.to_string());
                        }
                    }
                    from = end;
                }
                i = end;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&statement.sql[from..]);
    sea_orm::Statement { sql: out, values: Some(sea_orm::Values(kept)), db_backend: statement.db_backend }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_inline() {
        use sea_orm::{DatabaseBackend, Statement, Value, Values};
        let statement = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            r#"SELECT '$1', "a$2", E'\'$3', E'\\' FROM t WHERE x = $1 AND y IN ($3, $1) LIMIT $2) LIMIT $4 OFFSET $5"#,
            [Value::from("x"), Value::from(10u64), Value::from(7i64), Value::from(21u64), Value::from(3u64)],
        );
        let inlined = limits_inline(statement);
        assert_eq!(
            inlined.sql,
            r#"SELECT '$1', "a$2", E'\'$3', E'\\' FROM t WHERE x = $1 AND y IN ($2, $1) LIMIT 10) LIMIT 21 OFFSET $3"#
        );
        assert_eq!(inlined.values, Some(Values(vec![Value::from("x"), Value::from(7i64), Value::from(3u64)])));
    }

    #[test]
    fn kept_statements_are_bounded() {
        use sea_orm::{DatabaseBackend, Statement, Value};
        let mut kept = Kept::new();
        let built = |value: &str| {
            let sql = "x".repeat(20_000);
            Arc::new(Built {
                statement: Some(Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, [Value::from(value)])),
                id_at: Vec::new(),
            })
        };
        let value = "v".repeat(10_000);
        for i in 0..2000 {
            kept.put(format!("k{i}"), built(&value));
        }
        assert_eq!(kept.statements.len(), KEPT, "the newest");
        assert!(kept.get("k1999").is_some() && kept.get(&format!("k{}", 1999 - KEPT)).is_none());
        // A long filter value counts as what it holds: not kept.
        kept.put("long".into(), built(&"x".repeat(100_000)));
        assert!(kept.get("long").is_none());
    }
}
