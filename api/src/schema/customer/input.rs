//! Customer inputs: the list filter and order, create and update, turned into the service's.
use super::*;

/// Filter of the customer list; fields combine with AND, `and`/`or` nest.
#[derive(InputObject, Default)]
pub struct CustomerFilter {
    pub and: Option<Vec<CustomerFilter>>,
    pub or: Option<Vec<CustomerFilter>>,
    pub id: Option<IdFilter>,
    pub name: Option<StringFilter>,
    pub kind: Option<EnumFilter<CustomerKind>>,
    pub category: Option<StringFilter>,
    /// Matched on the E.164 form; `eq` accepts any spelling of the number.
    pub phone: Option<StringFilter>,
    /// Matched lower-cased.
    pub email: Option<StringFilter>,
    pub region: Option<StringFilter>,
    pub industry: Option<StringFilter>,
    pub source: Option<EnumFilter<CustomerSource>>,
    pub importance: Option<EnumFilter<Importance>>,
    pub lifecycle_stage: Option<EnumFilter<LifecycleStage>>,
    pub tier: Option<EnumFilter<Tier>>,
    pub owner_id: Option<IdFilter>,
    pub department_id: Option<IdFilter>,
    pub created_at: Option<DateTimeFilter>,
    pub updated_at: Option<DateTimeFilter>,
    pub frequency_class: Option<EnumFilter<Level>>,
    pub value_class: Option<EnumFilter<Level>>,
    pub relationship_type: Option<EnumFilter<RelationshipType>>,
    pub turnover_margin_class: Option<EnumFilter<TurnoverMarginClass>>,
    pub rfm_score: Option<IntFilter>,
    pub won_deal_count: Option<IntFilter>,
    pub last_purchase_on: Option<DateFilter>,
    /// Won revenue in the window, in the base currency (needs permission to see amounts).
    pub revenue: Option<MoneyFilter>,
    /// Custom fields of the category templates, each typed by its definition; all must
    /// hold.
    pub custom_fields: Option<Vec<CustomFieldFilter>>,
}

/// A filter on one custom field (`categories`' templates). Values are strings read by the
/// field's type: numbers and amounts ("1200.50") compare as numbers, dates
/// (YYYY-MM-DD) in order, booleans are "true"/"false"; for a multiple choice, `eq` keeps
/// the customers who chose that value and `in` those who chose any of them. A stored value
/// of another type (a template changed since) never matches.
#[derive(InputObject)]
pub struct CustomFieldFilter {
    pub key: String,
    pub eq: Option<String>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<String>>,
    /// Text fields: case-insensitive substring.
    pub contains: Option<String>,
    pub gte: Option<String>,
    pub lte: Option<String>,
    /// Whether the field is unset.
    pub is_null: Option<bool>,
}

/// Sortable customer fields.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CustomerSortField {
    Name,
    CreatedAt,
    UpdatedAt,
    Category,
    Kind,
    LifecycleStage,
    Tier,
    /// Won revenue in the window (needs permission to see amounts).
    Revenue,
    WonDealCount,
}

impl From<CustomerSortField> for SortField {
    fn from(f: CustomerSortField) -> Self {
        match f {
            CustomerSortField::Name => SortField::Name,
            CustomerSortField::CreatedAt => SortField::CreatedAt,
            CustomerSortField::UpdatedAt => SortField::UpdatedAt,
            CustomerSortField::Category => SortField::Category,
            CustomerSortField::Kind => SortField::Kind,
            CustomerSortField::LifecycleStage => SortField::LifecycleStage,
            CustomerSortField::Tier => SortField::Tier,
            CustomerSortField::Revenue => SortField::Revenue,
            CustomerSortField::WonDealCount => SortField::WonDealCount,
        }
    }
}

/// One sort key, a built-in `field` or a `customField`; rows that tie on every key are
/// ordered by id.
#[derive(InputObject)]
pub struct CustomerOrder {
    /// A built-in field.
    pub field: Option<CustomerSortField>,
    /// Instead of `field`, the key of a custom field (TEXT, CHOICE, DATE, NUMBER or
    /// MONEY) of a category open to you; customers without a value of the field's type
    /// come last in either direction.
    pub custom_field: Option<String>,
    #[graphql(default)]
    pub direction: SortDirection,
}

impl CustomerOrder {
    /// The service's sort key and direction.
    ///
    /// # Errors
    /// VALIDATION unless exactly one of `field` and `customField` is given.
    pub(super) fn key(self) -> AppResult<(SortField, bool)> {
        let descending = self.direction == SortDirection::Desc;
        match (self.field, self.custom_field) {
            (Some(f), None) => Ok((f.into(), descending)),
            (None, Some(key)) => Ok((SortField::Custom(key), descending)),
            _ => Err(AppError::invalid("orderBy", "give either field or customField")),
        }
    }
}

/// A new customer. The caller becomes its owner, in the caller's department.
#[derive(InputObject)]
pub struct CreateCustomerInput {
    pub name: String,
    pub kind: CustomerKind,
    /// Defaults to retail for individuals and partner for organizations.
    pub category: Option<String>,
    /// Mainland numbers may omit +86.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Individuals only.
    pub gender: Option<Gender>,
    /// Individuals only.
    pub birthday: Option<Date>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub source: Option<CustomerSource>,
    pub importance: Option<Importance>,
    pub credit_rating: Option<String>,
    pub cooperation_start_date: Option<Date>,
    pub soft_profile: Option<SoftProfile>,
    /// A JSON object of category-specific fields.
    pub custom_fields: Option<async_graphql::Json<serde_json::Value>>,
    /// TARGET (default) or PROSPECT.
    pub lifecycle_stage: Option<LifecycleStage>,
}

/// Changes to a customer. Omitted fields stay; `null` clears a field.
#[derive(InputObject)]
pub struct UpdateCustomerInput {
    pub id: ID,
    /// The version you read; a stale one gives CONFLICT.
    pub version: i32,
    pub name: Option<String>,
    pub category: Option<String>,
    pub phone: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub gender: MaybeUndefined<Gender>,
    pub birthday: MaybeUndefined<Date>,
    pub address: MaybeUndefined<String>,
    pub region: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub source: MaybeUndefined<CustomerSource>,
    pub importance: MaybeUndefined<Importance>,
    pub credit_rating: MaybeUndefined<String>,
    pub cooperation_start_date: MaybeUndefined<Date>,
    pub soft_profile: MaybeUndefined<SoftProfile>,
    pub custom_fields: MaybeUndefined<async_graphql::Json<serde_json::Value>>,
    /// TARGET or PROSPECT, while the customer has not bought yet.
    pub lifecycle_stage: Option<LifecycleStage>,
}

/// Converts a GraphQL patch value into the service's patch.
pub fn patch<T, U>(m: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match m {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(f(v))),
    }
}

pub(super) fn profile_json(p: SoftProfile) -> serde_json::Value {
    serde_json::to_value(p).unwrap_or_default()
}

impl From<CreateCustomerInput> for NewCustomer {
    fn from(input: CreateCustomerInput) -> Self {
        NewCustomer {
            kind: Some(input.kind.into()),
            category: input.category,
            name: input.name,
            gender: input.gender.map(Into::into),
            birthday: input.birthday.map(|d| d.0),
            phone: input.phone,
            email: input.email,
            address: input.address,
            region: input.region,
            industry: input.industry,
            source: input.source.map(Into::into),
            importance: input.importance.map(Into::into),
            credit_rating: input.credit_rating,
            cooperation_start_date: input.cooperation_start_date.map(|d| d.0),
            soft_profile: input.soft_profile.map(profile_json),
            custom_fields: input.custom_fields.map(|j| j.0),
            lifecycle_stage: input.lifecycle_stage.map(Into::into),
        }
    }
}
