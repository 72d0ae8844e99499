//! Completeness across customers: per owner or department, and the least complete
//! important customers.
use super::*;

/// What completeness reads of a customer: the template's built-in fields (as stored; the
/// address sealed) and the custom values, with what groups and ranks it.
#[derive(sea_orm::FromQueryResult)]
pub struct Facts {
    pub id: Uuid,
    pub category: String,
    pub owner_id: Option<Uuid>,
    pub department_id: Uuid,
    gender: Option<String>,
    birthday: Option<chrono::NaiveDate>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    importance: Option<String>,
    credit_rating: Option<String>,
    cooperation_start_date: Option<chrono::NaiveDate>,
    custom_fields: Option<Json>,
}

impl From<&customer::Model> for Facts {
    fn from(m: &customer::Model) -> Self {
        let text = |v: &Option<String>| v.clone();
        Facts {
            id: m.id,
            category: m.category.clone(),
            owner_id: m.owner_id,
            department_id: m.department_id,
            gender: m.gender.map(|g| g.as_str().to_string()),
            birthday: m.birthday,
            phone: text(&m.phone),
            email: text(&m.email),
            address: text(&m.address),
            region: text(&m.region),
            industry: text(&m.industry),
            source: m.source.map(|s| s.as_str().to_string()),
            importance: m.importance.map(|i| i.as_str().to_string()),
            credit_rating: text(&m.credit_rating),
            cooperation_start_date: m.cooperation_start_date,
            custom_fields: m.custom_fields.clone(),
        }
    }
}

impl Facts {
    fn filled(&self, field: &str) -> bool {
        match field {
            "gender" => self.gender.is_some(),
            "birthday" => self.birthday.is_some(),
            "phone" => self.phone.is_some(),
            "email" => self.email.is_some(),
            "address" => self.address.is_some(),
            "region" => self.region.is_some(),
            "industry" => self.industry.is_some(),
            "source" => self.source.is_some(),
            "importance" => self.importance.is_some(),
            "creditRating" => self.credit_rating.is_some(),
            "cooperationStartDate" => self.cooperation_start_date.is_some(),
            _ => true,
        }
    }

    /// Completeness against the template of the customer's category.
    pub fn completeness(&self, t: &Template) -> Completeness {
        let none = serde_json::Map::new();
        let values = match &self.custom_fields {
            Some(Json::Object(m)) => m,
            _ => &none,
        };
        score(t, |f| self.filled(f), values)
    }
}

/// The facts of the live customers `condition` selects, streamed to `each`.
async fn scan(db: &DatabaseConnection, condition: sea_orm::Condition, mut each: impl FnMut(Facts)) -> AppResult<()> {
    use customer::Column as C;
    use futures::TryStreamExt;
    use sea_orm::QuerySelect;
    let mut rows = customer::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::Category,
            C::OwnerId,
            C::DepartmentId,
            C::Gender,
            C::Birthday,
            C::Phone,
            C::Email,
            C::Address,
            C::Region,
            C::Industry,
            C::Source,
            C::Importance,
            C::CreditRating,
            C::CooperationStartDate,
            C::CustomFields,
        ])
        .filter(C::DeletedAt.is_null())
        .filter(condition)
        .into_model::<Facts>()
        .stream(db)
        .await?;
    while let Some(facts) = rows.try_next().await? {
        each(facts);
    }
    Ok(())
}

/// How `dataCompleteness` groups customers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Owner,
    Department,
    Category,
}

/// One group of the completeness report.
pub struct GroupCompleteness {
    /// The owner's or department's id, or the category's key; `None`: the public pool
    /// (grouped by owner).
    pub key: Option<String>,
    pub label: String,
    pub customers: u64,
    /// Customers whose score is 100.
    pub complete: u64,
    pub average_score: f64,
    /// Required fields most often empty, with how many customers lack each, most first.
    pub missing: Vec<(String, u64)>,
}

/// Seed 000's contest on record completeness: per owner, department or category, how
/// complete the records you may read are, best first.
///
/// # Errors
/// FORBIDDEN without customer read access; database errors.
pub async fn report(db: &DatabaseConnection, actor: &Actor, grouping: Grouping) -> AppResult<Vec<GroupCompleteness>> {
    actor.require(Resource::Customer, Action::Read)?;
    let catalogue = Catalogue::load(db).await?;
    #[derive(Default)]
    struct Acc {
        customers: u64,
        complete: u64,
        score: u64,
        missing: HashMap<String, u64>,
    }
    let mut groups: HashMap<Option<String>, Acc> = HashMap::new();
    scan(db, actor.customer_condition(Resource::Customer, Action::Read), |f| {
        let c = f.completeness(&catalogue.template(&f.category));
        let key = match grouping {
            Grouping::Owner => f.owner_id.map(|o| o.to_string()),
            Grouping::Department => Some(f.department_id.to_string()),
            Grouping::Category => Some(f.category.clone()),
        };
        let acc = groups.entry(key).or_default();
        acc.customers += 1;
        acc.complete += u64::from(c.score == 100);
        acc.score += u64::try_from(c.score).unwrap_or(0);
        for m in c.missing {
            *acc.missing.entry(m).or_default() += 1;
        }
    })
    .await?;
    let ids: Vec<Uuid> = groups.keys().flatten().filter_map(|k| Uuid::parse_str(k).ok()).collect();
    let names: HashMap<String, String> = match grouping {
        Grouping::Owner => entity::user::Entity::find()
            .filter(entity::user::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.name))
            .collect(),
        Grouping::Department => entity::department::Entity::find()
            .filter(entity::department::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect(),
        Grouping::Category => catalogue.all().map(|c| (c.row.key.clone(), c.row.name.clone())).collect(),
    };
    let mut rows: Vec<GroupCompleteness> = groups
        .into_iter()
        .map(|(key, acc)| {
            let mut missing: Vec<(String, u64)> = acc.missing.into_iter().collect();
            missing.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let label = match &key {
                None => "public pool".to_string(),
                Some(k) => names.get(k).cloned().unwrap_or_else(|| k.clone()),
            };
            GroupCompleteness {
                label,
                customers: acc.customers,
                complete: acc.complete,
                average_score: acc.score as f64 / acc.customers.max(1) as f64,
                missing,
                key,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.average_score
            .total_cmp(&a.average_score)
            .then_with(|| b.customers.cmp(&a.customers))
            .then_with(|| a.label.cmp(&b.label))
    });
    Ok(rows)
}

/// The least complete records of important customers (importance A, tier A or lifecycle
/// VIP) that you may read: (rank from 1, customer id, completeness), worst first, then
/// the page after `skip` of size `limit`, and how many there are in all.
///
/// # Errors
/// FORBIDDEN without customer read access; database errors.
pub async fn least_complete(
    db: &DatabaseConnection,
    actor: &Actor,
    skip: u64,
    limit: u64,
) -> AppResult<(Vec<(i64, Uuid, Completeness)>, u64)> {
    use entity::enums::{Importance, LifecycleStage, Tier};
    actor.require(Resource::Customer, Action::Read)?;
    let catalogue = Catalogue::load(db).await?;
    let important = sea_orm::Condition::any()
        .add(customer::Column::Importance.eq(Importance::A))
        .add(customer::Column::Tier.eq(Tier::A))
        .add(customer::Column::LifecycleStage.eq(LifecycleStage::Vip));
    let scope =
        sea_orm::Condition::all().add(actor.customer_condition(Resource::Customer, Action::Read)).add(important);
    let mut found = Vec::new();
    scan(db, scope, |f| {
        let c = f.completeness(&catalogue.template(&f.category));
        if c.score < 100 {
            found.push((f.id, c));
        }
    })
    .await?;
    found.sort_by(|a, b| a.1.score.cmp(&b.1.score).then_with(|| a.0.cmp(&b.0)));
    let total = found.len() as u64;
    let page = found
        .into_iter()
        .enumerate()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(i, (id, c))| (i64::try_from(i).unwrap_or(i64::MAX) + 1, id, c))
        .collect();
    Ok((page, total))
}
