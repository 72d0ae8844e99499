//! The holiday calendar: yearly and one-off holidays, the days around them.
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::store::write;
use crate::kernel::{new_id, now};
use chrono::{Datelike, Duration, NaiveDate};
use entity::enums::{Action, Resource};
use entity::holiday;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use uuid::Uuid;

/// Where a holiday falls in `year` (a yearly 29 February falls only in leap years).
pub fn holiday_in(h: &holiday::Model, year: i32) -> Option<NaiveDate> {
    if h.yearly {
        NaiveDate::from_ymd_opt(year, h.date.month(), h.date.day())
    } else {
        (h.date.year() == year).then_some(h.date)
    }
}

/// The holiday on `day`, if any.
pub(super) fn holiday_on(holidays: &[holiday::Model], day: NaiveDate) -> Option<&holiday::Model> {
    holidays.iter().find(|h| holiday_in(h, day.year()) == Some(day))
}

/// Whether `day` lies within `window` days of a holiday.
pub(super) fn near_holiday(holidays: &[holiday::Model], day: NaiveDate, window: i32) -> bool {
    (-window..=window).any(|d| holiday_on(holidays, day + Duration::days(i64::from(d))).is_some())
}

/// The calendar, ordered by date.
pub async fn holidays(db: &impl ConnectionTrait) -> AppResult<Vec<holiday::Model>> {
    Ok(holiday::Entity::find().order_by_asc(holiday::Column::Date).order_by_asc(holiday::Column::Name).all(db).await?)
}

/// Adds a holiday (admins).
///
/// # Errors
/// FORBIDDEN, VALIDATION, DUPLICATE (same name and date).
pub async fn add_holiday(
    db: &DatabaseConnection,
    actor: &Actor,
    name: &str,
    date: NaiveDate,
    yearly: bool,
) -> AppResult<holiday::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let mut v = Violations::new();
    let name = crate::kernel::required_text(&mut v, "name", name, 100);
    if yearly && date.month() == 2 && date.day() == 29 {
        v.add("date", "a yearly holiday cannot fall on 29 February");
    }
    v.into_result()?;
    write(db, async |txn| {
        let m = holiday::ActiveModel {
            id: Set(new_id()),
            name: Set(name),
            date: Set(date),
            yearly: Set(yearly),
            created_at: Set(now()),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Holiday, m.id, None, Some(&m)).await?;
        Ok(m)
    })
    .await
}

/// Removes a holiday (admins).
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn delete_holiday(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<holiday::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    write(db, async |txn| {
        let m = holiday::Entity::find_by_id(id).one(txn).await?.ok_or(AppError::NotFound("holiday"))?;
        holiday::Entity::delete_by_id(id).exec(txn).await?;
        change::record(txn, Some(actor.id()), Verb::Delete, Subject::Holiday, id, Some(&m), None).await?;
        Ok(m)
    })
    .await
}
