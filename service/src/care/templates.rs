//! The template library: suggested messages with `{placeholders}`, rendered into reminders.
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::now;
use crate::kernel::store::{check_version, save, write};
use entity::enums::{Action, Resource};
use entity::message_template;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use std::collections::HashMap;
use uuid::Uuid;

/// The placeholders a template may use; each rule fills those that apply to it.
pub const PLACEHOLDERS: [&str; 12] =
    ["customer", "name", "owner", "product", "holiday", "date", "expected", "last", "kind", "tier", "days", "count"];

/// The `{placeholder}`s of a template body.
fn placeholders_of(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start + 1..].find('}') else { break };
        out.push(&rest[start + 1..start + 1 + len]);
        rest = &rest[start + 1 + len + 1..];
    }
    out
}

/// Renders a template: known placeholders are replaced, a missing value becomes "".
pub fn render(body: &str, values: &HashMap<&'static str, String>) -> String {
    let mut out = body.to_string();
    for key in PLACEHOLDERS {
        let token = format!("{{{key}}}");
        if out.contains(&token) {
            out = out.replace(&token, values.get(key).map_or("", String::as_str));
        }
    }
    out
}

/// The template library, by key.
pub async fn templates(db: &impl ConnectionTrait) -> AppResult<Vec<message_template::Model>> {
    Ok(message_template::Entity::find().order_by_asc(message_template::Column::Key).all(db).await?)
}

/// Creates or replaces a template (admins). `version` is required to replace one.
///
/// # Errors
/// FORBIDDEN, VALIDATION (key, length, unknown placeholder), CONFLICT (stale version).
pub async fn save_template(
    db: &DatabaseConnection,
    actor: &Actor,
    key: &str,
    body: &str,
    version: Option<i32>,
) -> AppResult<message_template::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let mut v = Violations::new();
    let key = key.trim().to_string();
    if key.is_empty()
        || key.len() > 64
        || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        v.add("key", "1 to 64 characters of a-z, 0-9 and _");
    }
    let body = crate::kernel::required_text(&mut v, "body", body, 2000);
    let unknown: Vec<&str> = placeholders_of(&body).into_iter().filter(|p| !PLACEHOLDERS.contains(p)).collect();
    if !unknown.is_empty() {
        v.add("body", format!("unknown placeholder(s) {}; known: {}", unknown.join(", "), PLACEHOLDERS.join(", ")));
    }
    v.into_result()?;
    write(db, async |txn| {
        let old = message_template::Entity::find_by_id(key.clone()).one(txn).await?;
        match (old, version) {
            (Some(old), Some(_)) => {
                check_version::<message_template::Entity>(&old, version)?;
                let am = message_template::ActiveModel { body: Set(body), ..old.clone().into() };
                save::<message_template::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await
            }
            (Some(old), None) => Err(AppError::Conflict(format!(
                "template {key} exists at version {}; send that version to replace it",
                old.version
            ))),
            (None, _) => {
                let saved = message_template::ActiveModel {
                    key: Set(key.clone()),
                    body: Set(body),
                    version: Set(1),
                    updated_at: Set(now()),
                }
                .insert(txn)
                .await?;
                change::record(
                    txn,
                    Some(actor.id()),
                    Verb::Create,
                    Subject::MessageTemplate,
                    Uuid::nil(),
                    None,
                    Some(&saved),
                )
                .await?;
                Ok(saved)
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_known_placeholders() {
        let values = HashMap::from([("customer", "王女士".to_string()), ("product", "面霜".to_string())]);
        assert_eq!(render("{customer}，感谢选购{product}{holiday}", &values), "王女士，感谢选购面霜");
        assert_eq!(placeholders_of("{a} and {b}{c"), vec!["a", "b"]);
    }
}
