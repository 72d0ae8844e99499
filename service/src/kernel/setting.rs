//! Server settings kept in the database (the generated JWT secret).
use crate::error::AppResult;
use entity::setting;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};

/// Key of the generated JWT signing secret.
pub const JWT_SECRET: &str = "jwt_secret";

/// Returns the stored value of `key`, generating and storing one with `make` if absent.
/// A concurrent first start on another instance wins the insert; both then read it.
pub async fn get_or_create(
    db: &DatabaseConnection,
    key: &str,
    make: impl FnOnce() -> String,
) -> AppResult<(String, bool)> {
    if let Some(row) = setting::Entity::find_by_id(key.to_string()).one(db).await? {
        return Ok((row.value, false));
    }
    let inserted =
        setting::ActiveModel { key: Set(key.to_string()), value: Set(make()), updated_at: Set(crate::kernel::now()) }
            .insert(db)
            .await;
    match inserted {
        Ok(row) => Ok((row.value, true)),
        Err(_) => {
            let row = setting::Entity::find_by_id(key.to_string()).one(db).await?;
            Ok((row.map(|r| r.value).unwrap_or_default(), false))
        }
    }
}

/// The stored value of `key`, if any.
pub async fn get(db: &DatabaseConnection, key: &str) -> AppResult<Option<String>> {
    Ok(setting::Entity::find_by_id(key.to_string()).one(db).await?.map(|r| r.value))
}
