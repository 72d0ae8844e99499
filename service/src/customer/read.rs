//! Reading customers: one by id, several, where they sit, and the filtered, sorted list.
use super::*;
use sea_orm::sea_query::SelectStatement;

/// Sortable fields of the customer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortField {
    Name,
    CreatedAt,
    UpdatedAt,
    Category,
    Kind,
    LifecycleStage,
    Tier,
    Revenue,
    WonDealCount,
    /// A custom field of the category templates, by key.
    Custom(String),
}

/// The keyset sort key of a field.
///
/// # Errors
/// VALIDATION for a custom field the templates open to the caller do not define, or
/// one of a type without an order.
pub fn sort_key(
    field: &SortField,
    descending: bool,
    custom: Option<&custom_filter::Custom>,
) -> AppResult<SortKey<customer::Entity>> {
    let (name, column, value): (_, _, fn(&customer::Model) -> SortValue) = match field {
        SortField::Name => ("name", Column::Name, |m| SortValue::Text(m.name.clone())),
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
        SortField::UpdatedAt => ("updatedAt", Column::UpdatedAt, |m| SortValue::Time(m.updated_at)),
        SortField::Category => ("category", Column::Category, |m| SortValue::Text(m.category.clone())),
        SortField::Kind => ("kind", Column::Kind, |m| SortValue::Text(m.kind.to_string())),
        SortField::LifecycleStage => {
            ("lifecycleStage", Column::LifecycleStage, |m| SortValue::Text(m.lifecycle_stage.to_string()))
        }
        SortField::Tier => ("tier", Column::Tier, |m| SortValue::Text(m.tier.to_string())),
        SortField::Revenue => ("revenue", Column::RevenueMinor, |m| SortValue::Int(m.revenue_minor)),
        SortField::WonDealCount => ("wonDealCount", Column::WonCount, |m| SortValue::Int(m.won_count as i64)),
        SortField::Custom(key) => {
            let custom = custom.ok_or_else(|| AppError::invalid("orderBy.customField", "no custom fields here"))?;
            return crate::customer::custom_filter::sort_key(custom, key, descending);
        }
    };
    Ok(SortKey::new(name, column, descending, value))
}

impl Listing for customer::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::CUSTOMER;
    type Custom = custom_filter::Custom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::CreatedAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("id", Column::Id, Kind::Id),
        Field::new("name", Column::Name, Kind::Text),
        Field::new("kind", Column::Kind, choice!(CustomerKind)),
        Field::new("category", Column::Category, Kind::Text),
        Field::new("phone", Column::PhoneNorm, Kind::Phone),
        Field::new("email", Column::EmailNorm, Kind::Email),
        Field::new("region", Column::Region, Kind::Text),
        Field::new("industry", Column::Industry, Kind::Text),
        Field::new("source", Column::Source, choice!(CustomerSource)),
        Field::new("importance", Column::Importance, choice!(Importance)),
        Field::new("lifecycleStage", Column::LifecycleStage, choice!(LifecycleStage)),
        Field::new("tier", Column::Tier, choice!(Tier)),
        Field::new("ownerId", Column::OwnerId, Kind::Id),
        Field::new("departmentId", Column::DepartmentId, Kind::Id),
        Field::new("createdAt", Column::CreatedAt, Kind::Time),
        Field::new("updatedAt", Column::UpdatedAt, Kind::Time),
        Field::new("frequencyClass", Column::FrequencyClass, choice!(entity::enums::Level)),
        Field::new("valueClass", Column::ValueClass, choice!(entity::enums::Level)),
        Field::new("relationshipType", Column::RelationshipType, choice!(entity::enums::RelationshipType)),
        Field::new("turnoverMarginClass", Column::TurnoverMarginClass, choice!(entity::enums::TurnoverMarginClass)),
        Field::new("rfmScore", Column::RfmScore, Kind::Int),
        Field::new("wonDealCount", Column::WonCount, Kind::Int),
        Field::new("lastPurchaseOn", Column::LastPurchaseOn, Kind::Day),
        // Won revenue in the window, in the base currency.
        Field::new("revenue", Column::RevenueMinor, Kind::Amount { currency: None }),
    ];
    const CUSTOMER_COLUMN: Option<Column> = None;
    fn sort_key(field: &SortField, descending: bool, custom: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        sort_key(field, descending, custom)
    }
}

/// A live customer the caller may read.
///
/// # Errors
/// NOT_FOUND when absent, deleted or out of scope.
pub async fn get(db: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<customer::Model> {
    get_select(actor, id).one(db).await?.ok_or(AppError::NotFound("customer"))
}

/// The select of [`get`]: the customer `id` if it is live and the caller may read it (the
/// compiled read path, `service/src/compiled.rs`, answers from its condition,
/// [`get_condition`]).
pub fn get_select(actor: &Actor, id: Uuid) -> Select<customer::Entity> {
    customer::Entity::find().filter(get_condition(actor, id))
}

/// The condition of [`get_select`] over `customer` (a statement that selects its own
/// expressions starts from it: building sea-orm's select of every column first was 4% of
/// the server's samples on a compiled by-id lookup).
pub fn get_condition(actor: &Actor, id: Uuid) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Column::Id.eq(id))
        .add(Column::DeletedAt.is_null())
        .add(actor.customer_condition(Resource::Customer, Action::Read))
}

/// The live customers among `ids` that the caller may read, for batched loads.
pub async fn readable_by_ids(
    db: &DatabaseConnection,
    actor: &Actor,
    ids: Vec<Uuid>,
) -> AppResult<Vec<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(Column::Id.is_in(ids))
        .filter(Column::DeletedAt.is_null())
        .filter(actor.customer_condition(Resource::Customer, Action::Read))
        .all(db)
        .await?)
}

/// Where each of these customers sits (owner, department), whoever asks: used only to
/// decide which field groups show on records the caller already reads.
///
/// # Errors
/// Database errors.
pub async fn placements(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> AppResult<Vec<(Uuid, Placement)>> {
    let rows: Vec<(Uuid, Option<Uuid>, Uuid)> = customer::Entity::find()
        .select_only()
        .columns([Column::Id, Column::OwnerId, Column::DepartmentId])
        .filter(Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, owner_id, department_id)| (id, Placement { owner_id, department_id })).collect())
}

/// Lists the customers the caller may read that match the query; the trash with `deleted`.
///
/// # Errors
/// VALIDATION (filter, paging), FORBIDDEN (revenue without the right to see amounts).
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &ListQuery<SortField>,
) -> AppResult<Page<customer::Model>> {
    let ListSelect { select: q, keys, tallied } = list_select(db, actor, query).await?;
    // A sales rep's "own rows or my department's pool" reads each part from its index
    // (`idx_customer_owner_created`, `idx_customer_pool_created`) instead of filtering a
    // scan of every customer by the OR.
    let mut page = match actor.customer_parts(Resource::Customer, Action::Read) {
        Some(parts) => paginate_parts(db, q, parts, &keys, Column::Id, |m| m.id, &query.page).await?,
        None => {
            let q = q.filter(actor.customer_condition(Resource::Customer, Action::Read));
            paginate(db, q, &keys, Column::Id, |m| m.id, &query.page).await?
        }
    };
    if let Some(count) = tallied {
        let db = db.clone();
        page.total_count = std::sync::Arc::new(move || {
            let (db, count) = (db.clone(), count.clone());
            Box::pin(async move { super::tally::total(&db, &count).await })
        });
    }
    Ok(page)
}

/// The customers a list reads, before row scope.
pub struct ListSelect {
    /// The query's filter over the live customers, or the trash.
    pub select: Select<customer::Entity>,
    /// The list's sort keys.
    pub keys: Vec<SortKey<customer::Entity>>,
    /// The list's `totalCount` in the caller's scope from the tally (`tally::count`), when
    /// the list is every live customer the caller reads (no filter, no sort key confined
    /// to some rows) and the store keeps one.
    pub tallied: Option<SelectStatement>,
}

/// Whether the list's statement depends on the stored categories (a filter or a sort on
/// custom fields, typed by the templates open to the caller): otherwise it is a function
/// of the caller and the query alone.
pub fn reads_categories(query: &ListQuery<SortField>) -> bool {
    crate::kernel::filter::mentions(query.filter.as_ref(), "customFields")
        || query.order.iter().any(|(f, _)| matches!(f, SortField::Custom(_)))
}

/// The customers of [`list`] before row scope, with the list's sort keys: the query's
/// filter (custom fields typed by the templates open to the caller) over the live
/// customers, or the trash. The compiled read path (`service/src/compiled.rs`) pages the same
/// select.
///
/// # Errors
/// VALIDATION for a filter or order the caller may not use.
pub async fn list_select(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &ListQuery<SortField>,
) -> AppResult<ListSelect> {
    // Custom fields are typed by the templates of the categories open to the caller.
    let custom = if reads_categories(query) {
        let catalogue = Catalogue::load(db).await?;
        let mut kinds = std::collections::HashMap::new();
        for c in category::visible(db, actor, &catalogue).await? {
            for f in &c.fields {
                kinds.entry(f.key.clone()).or_insert(f.kind);
            }
        }
        Some(custom_filter::Custom { backend: db.get_database_backend(), kinds })
    } else {
        None
    };
    let (filter, keys) =
        crate::access::list::plan::<customer::Entity>(actor, Resource::Customer, query, custom.as_ref())?;
    let tallied = if query.deleted || !filter.is_empty() {
        None
    } else {
        super::tally::count(db.get_database_backend(), &actor.reach(Resource::Customer, Action::Read))
    };
    let live = if query.deleted { Column::DeletedAt.is_not_null() } else { Column::DeletedAt.is_null() };
    Ok(ListSelect { select: customer::Entity::find().filter(live).filter(filter), keys, tallied })
}

/// Locks a customer's row for the rest of the transaction (`FOR UPDATE` on PostgreSQL;
/// SQLite's write transaction holds the whole database already) and returns it as it is.
///
/// The lock order of every write (`docs/architecture.md`, "Writes and concurrency"): the
/// customer first, in id order when there are several, then its records. A write of a
/// contact, deal, feedback or interaction takes it before touching the record, so the
/// foreign key's key-share lock and the regrade's row lock of two such writes can no
/// longer wait on each other in a circle.
///
/// # Errors
/// NOT_FOUND when the row is gone; database errors.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> AppResult<customer::Model> {
    customer::Entity::find_by_id(id).lock_exclusive().one(db).await?.ok_or(AppError::NotFound("customer"))
}
