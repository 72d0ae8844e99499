//! The category catalogue and its field templates (`docs/categories.md`).
use super::common::{actor, db};
use super::error::ResultExt;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use service::category as svc;
use service::category::{CategoryInput as NewCategory, FieldDef, FieldKind, Template};

/// The type of a custom field, and what its value is in `customFields`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "FieldKind")]
pub enum FieldType {
    /// A string; `min`/`max` bound its length, `pattern` is a regular expression it matches.
    Text,
    /// A JSON number.
    Number,
    /// A decimal string with at most two places, e.g. "1200.50".
    Money,
    /// A date string YYYY-MM-DD.
    Date,
    /// One of `choices`.
    Choice,
    /// A list of distinct `choices`.
    MultiChoice,
    /// true or false.
    Boolean,
}

/// A customer field, as templates require them (`requiredFields`: every one but NAME,
/// which is always required, CATEGORY, SOFT_PROFILE and CUSTOM_FIELDS) and merges take
/// them (`mergeCustomers`' `fieldChoices`).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CustomerField {
    Name,
    Category,
    Gender,
    Birthday,
    Phone,
    Email,
    Address,
    Region,
    Industry,
    Source,
    Importance,
    CreditRating,
    CooperationStartDate,
    SoftProfile,
    CustomFields,
}

impl CustomerField {
    /// The name the services use (the field's name in GraphQL and in VALIDATION paths).
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Category => "category",
            Self::Gender => "gender",
            Self::Birthday => "birthday",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Address => "address",
            Self::Region => "region",
            Self::Industry => "industry",
            Self::Source => "source",
            Self::Importance => "importance",
            Self::CreditRating => "creditRating",
            Self::CooperationStartDate => "cooperationStartDate",
            Self::SoftProfile => "softProfile",
            Self::CustomFields => "customFields",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        use async_graphql::resolver_utils::EnumType;
        Self::items().iter().map(|item| item.value).find(|f| f.name() == name)
    }
}

/// A custom field of a category's template.
#[derive(SimpleObject, Clone)]
pub struct FieldDefinition {
    /// The key in `customFields`.
    pub key: String,
    /// What a form shows.
    pub label: String,
    #[graphql(name = "type")]
    pub kind: FieldType,
    /// Required for new writes (`docs/categories.md`: older records show as incomplete).
    pub required: bool,
    /// Lower bound: a number, an amount ("0.00"), a date or, for text, a length.
    pub min: Option<String>,
    /// Upper bound, as `min`.
    pub max: Option<String>,
    /// Text only: a regular expression the value must match.
    pub pattern: Option<String>,
    /// CHOICE and MULTI_CHOICE only: the values offered.
    pub choices: Vec<String>,
}

/// A custom field as an administrator defines it.
#[derive(InputObject)]
pub struct FieldDefinitionInput {
    /// The key in `customFields`: a-z, 0-9 and _, starting with a letter; at most 40.
    pub key: String,
    /// What a form shows.
    pub label: String,
    #[graphql(name = "type")]
    pub kind: FieldType,
    /// Required for new writes (older records show as incomplete).
    #[graphql(default)]
    pub required: bool,
    /// Lower bound: a number, an amount ("0.00"), a date or, for text, a length.
    pub min: Option<String>,
    /// Upper bound, as `min`.
    pub max: Option<String>,
    /// Text only: a regular expression the whole value must match (anchor it: `^...$`).
    pub pattern: Option<String>,
    /// CHOICE and MULTI_CHOICE only: the values offered.
    #[graphql(default)]
    pub choices: Vec<String>,
}

impl From<FieldDef> for FieldDefinition {
    fn from(f: FieldDef) -> Self {
        Self {
            key: f.key,
            label: f.label,
            kind: f.kind.into(),
            required: f.required,
            min: f.min,
            max: f.max,
            pattern: f.pattern,
            choices: f.choices,
        }
    }
}

impl From<FieldDefinitionInput> for FieldDef {
    fn from(f: FieldDefinitionInput) -> Self {
        Self {
            key: f.key.trim().to_string(),
            label: f.label,
            kind: f.kind.into(),
            required: f.required,
            min: f.min.filter(|m| !m.trim().is_empty()),
            max: f.max.filter(|m| !m.trim().is_empty()),
            pattern: f.pattern.filter(|p| !p.is_empty()),
            choices: f.choices,
        }
    }
}

/// What a customer of a category must and may hold: its main category's template and
/// its own.
#[derive(SimpleObject)]
pub struct FieldTemplate {
    /// Built-in fields that must be filled (besides `name`).
    pub required_fields: Vec<CustomerField>,
    /// The custom fields a customer of the category may hold in `customFields`.
    pub fields: Vec<FieldDefinition>,
}

impl From<Template> for FieldTemplate {
    fn from(t: Template) -> Self {
        Self {
            required_fields: t.required.iter().filter_map(|r| CustomerField::from_name(r)).collect(),
            fields: t.fields.into_iter().map(Into::into).collect(),
        }
    }
}

/// A main category or a sub-category of one (seed 004).
pub struct Category {
    category: svc::Category,
    template: Template,
    active: bool,
}

impl Category {
    /// A category of `catalogue`, with what it takes from its main category.
    fn of(catalogue: &svc::Catalogue, category: svc::Category) -> Self {
        Category { template: catalogue.template(&category.row.key), active: catalogue.active(&category), category }
    }
}

#[Object]
impl Category {
    /// What `Customer.category` holds.
    async fn key(&self) -> &str {
        &self.category.row.key
    }
    async fn name(&self) -> &str {
        &self.category.row.name
    }
    /// The main category of a sub-category; null for a main category.
    async fn parent_key(&self) -> Option<&str> {
        self.category.row.parent_key.as_deref()
    }
    /// Usable only for customers of this department's subtree; null: everywhere.
    async fn department_id(&self) -> Option<ID> {
        self.category.row.department_id.map(|d| ID(d.to_string()))
    }
    /// Built-in fields this category itself requires.
    async fn required_fields(&self) -> Vec<CustomerField> {
        self.category.required.iter().filter_map(|r| CustomerField::from_name(r)).collect()
    }
    /// Custom fields this category itself defines.
    async fn fields(&self) -> Vec<FieldDefinition> {
        self.category.fields.iter().cloned().map(Into::into).collect()
    }
    /// The whole template a customer of this category is checked against (with the main
    /// category's).
    async fn template(&self) -> FieldTemplate {
        self.template.clone().into()
    }
    async fn position(&self) -> i32 {
        self.category.row.position
    }
    /// Inactive categories take no new customers; those in them stay. A sub-category of a
    /// retired main category is inactive too.
    async fn active(&self) -> bool {
        self.active
    }
    async fn version(&self) -> i32 {
        self.category.row.version
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.category.row.updated_at
    }
}

#[derive(Default)]
pub struct CategoryQuery;

#[Object]
impl CategoryQuery {
    /// The categories you may file customers under (administrators: every one), in
    /// display order; `includeInactive` adds the retired ones.
    async fn categories(&self, ctx: &Context<'_>, #[graphql(default)] include_inactive: bool) -> Result<Vec<Category>> {
        let actor = actor(ctx)?;
        let catalogue = super::loaders::catalogue(ctx).await?;
        let visible = svc::visible(db(ctx), actor, &catalogue).await.gql()?;
        Ok(visible
            .into_iter()
            .filter(|c| include_inactive || catalogue.active(c))
            .map(|c| Category::of(&catalogue, c))
            .collect())
    }

    /// How complete the records you may read are (seed 000's contest on record
    /// completeness), per owner, department or category, best first.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn data_completeness(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CompletenessGrouping::Owner")] group_by: CompletenessGrouping,
    ) -> Result<Vec<CompletenessGroup>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let rows = svc::report(heavy.db(), actor, group_by.into()).await.gql()?;
        Ok(rows
            .into_iter()
            .map(|r| CompletenessGroup {
                key: r.key.map(ID),
                label: r.label,
                customers: i64::try_from(r.customers).unwrap_or(i64::MAX),
                complete: i64::try_from(r.complete).unwrap_or(i64::MAX),
                average_score: r.average_score,
                missing: r
                    .missing
                    .into_iter()
                    .map(|(field, count)| MissingField { field, customers: i64::try_from(count).unwrap_or(i64::MAX) })
                    .collect(),
            })
            .collect())
    }

    /// Important customers (importance A, tier A or lifecycle VIP) whose records are
    /// least complete, worst first: the records to fix first.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn least_complete_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<IncompleteCustomerConnection> {
        use service::kernel::pagination::{Cursor, page_size};
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let limit = page_size(first).gql()?;
        let skip = after.as_deref().map(Cursor::rank).transpose().gql()?.map_or(0, |r| u64::try_from(r).unwrap_or(0));
        let (rows, total) = svc::least_complete(heavy.db(), actor, skip, limit + 1).await.gql()?;
        let has_next_page = rows.len() as u64 > limit;
        let edges = rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|(rank, id, c)| IncompleteCustomerEdge {
                cursor: Cursor::Rank(rank).encode(),
                node: IncompleteCustomer {
                    rank,
                    customer_id: id,
                    completeness: super::customer::Completeness {
                        score: c.score,
                        missing: c.missing,
                        invalid: c.invalid,
                    },
                },
            })
            .collect::<Vec<_>>();
        let page_info = super::common::PageInfo {
            has_next_page,
            has_previous_page: skip > 0,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Ok(IncompleteCustomerConnection { edges, page_info, total_count: i64::try_from(total).unwrap_or(i64::MAX) })
    }

    /// One category by key, if you may see it.
    async fn category(&self, ctx: &Context<'_>, key: String) -> Result<Option<Category>> {
        let actor = actor(ctx)?;
        let catalogue = super::loaders::catalogue(ctx).await?;
        let visible = svc::visible(db(ctx), actor, &catalogue).await.gql()?;
        Ok(visible.into_iter().find(|c| c.row.key == key).map(|c| Category::of(&catalogue, c)))
    }
}

/// A category as an administrator saves it: the whole of it (what is left out is empty).
#[derive(InputObject)]
pub struct CategoryInput {
    /// a-z, 0-9 and _, starting with a letter; at most 40. Cannot be changed once created.
    pub key: String,
    pub name: String,
    /// Makes this a sub-category of a main category.
    pub parent_key: Option<String>,
    /// Restricts the category to customers of this department's subtree.
    pub department_id: Option<ID>,
    #[graphql(default)]
    pub required_fields: Vec<CustomerField>,
    #[graphql(default)]
    pub fields: Vec<FieldDefinitionInput>,
    /// Display order (default: after the last).
    pub position: Option<i32>,
    /// false retires the category (default: as it is; new categories are active).
    pub active: Option<bool>,
}

#[derive(Default)]
pub struct CategoryMutation;

#[Object]
impl CategoryMutation {
    /// Creates a category (no `version`) or replaces one (its current `version`).
    /// Administrators. DUPLICATE when creating a key that exists; CONFLICT when `version`
    /// is stale.
    async fn save_category(&self, ctx: &Context<'_>, input: CategoryInput, version: Option<i32>) -> Result<Category> {
        let actor = actor(ctx)?;
        let department_id =
            input.department_id.map(|d| super::common::parse_id("input.departmentId", &d)).transpose().gql()?;
        let new = NewCategory {
            key: input.key,
            name: input.name,
            parent_key: input.parent_key,
            department_id,
            required_fields: input.required_fields.into_iter().map(|f| f.name().to_string()).collect(),
            fields: input.fields.into_iter().map(Into::into).collect(),
            position: input.position,
            active: input.active,
        };
        let saved = svc::save_category(db(ctx), actor, new, version).await.gql()?;
        // Read again after the save (a per-request copy may predate it).
        let catalogue = svc::Catalogue::load(db(ctx)).await.gql()?;
        Ok(Category::of(&catalogue, svc::Category::from_row(saved)))
    }
}

/// How `dataCompleteness` groups customers.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "svc::Grouping")]
pub enum CompletenessGrouping {
    /// By owner; the public pool is one group (key null).
    Owner,
    Department,
    Category,
}

/// A required field and how many customers of a group lack it.
#[derive(SimpleObject)]
pub struct MissingField {
    /// `address`, `customFields.computers`, ...
    pub field: String,
    pub customers: i64,
}

/// One group of the completeness report.
#[derive(SimpleObject)]
pub struct CompletenessGroup {
    /// The owner's or department's id, or the category's key; null for the public pool.
    pub key: Option<ID>,
    /// The owner's or department's name, or the category's.
    pub label: String,
    /// Live customers of the group you may read.
    pub customers: i64,
    /// Of those, the ones with every required field filled.
    pub complete: i64,
    /// Mean completeness score, 0 to 100.
    pub average_score: f64,
    /// Required fields the group's records lack most, most first.
    pub missing: Vec<MissingField>,
}

/// An important customer whose record is incomplete.
pub struct IncompleteCustomer {
    rank: i64,
    customer_id: uuid::Uuid,
    completeness: super::customer::Completeness,
}

#[Object]
impl IncompleteCustomer {
    /// Position on the list, from 1.
    async fn rank(&self) -> i64 {
        self.rank
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<super::customer::Customer>> {
        super::loaders::customer(ctx, self.customer_id).await
    }
    async fn completeness(&self) -> &super::customer::Completeness {
        &self.completeness
    }
}

/// One incomplete customer with its cursor.
#[derive(SimpleObject)]
pub struct IncompleteCustomerEdge {
    pub cursor: String,
    pub node: IncompleteCustomer,
}

/// A page of `leastCompleteCustomers`.
#[derive(SimpleObject)]
pub struct IncompleteCustomerConnection {
    pub edges: Vec<IncompleteCustomerEdge>,
    pub page_info: super::common::PageInfo,
    /// Important customers with an incomplete record that you may read.
    pub total_count: i64,
}
