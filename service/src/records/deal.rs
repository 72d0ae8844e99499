//! Deals: opportunities and, once won, sales records with their line items.
use crate::access::Actor;
use crate::access::list::Listing;
use crate::catalogue::DEAL;
use crate::choice;
use crate::error::{AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::pagination::{SortKey, SortValue};
use crate::kernel::store::{save, write};
use crate::kernel::types::CustomerId;
use crate::kernel::{Patch, money, new_id, now, optional_text, required_text};
use crate::records::{check_parent, load_for};
use chrono::NaiveDate;
use entity::deal::{self, Column};
use entity::deal_line_item as line;
use entity::enums::{Action, DealStage};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use std::collections::HashMap;
use uuid::Uuid;

/// Most line items one deal may carry.
pub const MAX_LINE_ITEMS: usize = 200;

/// A line item as entered; prices are decimal strings in the deal's currency.
#[derive(Clone)]
pub struct LineItemInput {
    pub product: String,
    pub sku: Option<String>,
    pub quantity: i64,
    pub unit_price: String,
    pub unit_cost: Option<String>,
}

/// A new deal.
#[derive(Clone)]
pub struct NewDeal {
    pub customer_id: CustomerId,
    pub title: String,
    pub stage: Option<DealStage>,
    /// Decimal string; required without line items, must equal their sum with them.
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    pub actual_close_date: Option<NaiveDate>,
    pub lost_reason: Option<String>,
    pub line_items: Vec<LineItemInput>,
}

/// Changes to a deal. `line_items` replaces all items when given.
#[derive(Default, Clone)]
pub struct DealPatch {
    pub title: Option<String>,
    pub stage: Option<DealStage>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub expected_close_date: Patch<NaiveDate>,
    pub actual_close_date: Patch<NaiveDate>,
    pub lost_reason: Patch<String>,
    pub line_items: Option<Vec<LineItemInput>>,
}

/// Sortable deal fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    Title,
    Stage,
    Amount,
}

pub fn sort_key(field: SortField, descending: bool) -> SortKey<deal::Entity> {
    let (name, column, value): (_, _, fn(&deal::Model) -> SortValue) = match field {
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
        SortField::UpdatedAt => ("updatedAt", Column::UpdatedAt, |m| SortValue::Time(m.updated_at)),
        SortField::Title => ("title", Column::Title, |m| SortValue::Text(m.title.clone())),
        SortField::Stage => ("stage", Column::Stage, |m| SortValue::Text(m.stage.to_string())),
        SortField::Amount => ("amount", Column::AmountMinor, |m| SortValue::Int(m.amount_minor)),
    };
    SortKey::new(name, column, descending, value)
}

impl Listing for deal::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::DEAL;
    type Custom = crate::kernel::filter::NoCustom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::CreatedAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("customerId", Column::CustomerId, Kind::Id),
        Field::new("ownerId", Column::OwnerId, Kind::Id),
        Field::new("title", Column::Title, Kind::Text),
        Field::new("stage", Column::Stage, choice!(DealStage)),
        Field::new("amount", Column::AmountMinor, Kind::Amount { currency: Some(Column::Currency) }),
        Field::new("expectedCloseDate", Column::ExpectedCloseDate, Kind::Day),
        Field::new("actualCloseDate", Column::ActualCloseDate, Kind::Day),
        Field::new("createdAt", Column::CreatedAt, Kind::Time),
    ];
    const CUSTOMER_COLUMN: Option<Column> = Some(Column::CustomerId);
    fn sort_key(field: &SortField, descending: bool, _: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        Ok(sort_key(*field, descending))
    }
}

/// Validated line items in minor units: (product, sku, quantity, unit price, unit cost).
type Lines = Vec<(String, Option<String>, i64, i64, Option<i64>)>;

fn check_lines(v: &mut Violations, items: &[LineItemInput], currency: &str) -> (Lines, Option<i64>) {
    if items.len() > MAX_LINE_ITEMS {
        v.add("lineItems", format!("at most {MAX_LINE_ITEMS} line items"));
    }
    let mut lines = Vec::new();
    let mut total: Option<i64> = Some(0);
    for (i, item) in items.iter().enumerate() {
        let product = required_text(v, &format!("lineItems[{i}].product"), &item.product, 200);
        if !(1..=1_000_000_000).contains(&item.quantity) {
            v.add(format!("lineItems[{i}].quantity"), "must be between 1 and 1000000000");
        }
        let price = v.check(&format!("lineItems[{i}].unitPrice"), money::parse_minor(&item.unit_price, currency));
        let cost = item
            .unit_cost
            .as_deref()
            .and_then(|c| v.check(&format!("lineItems[{i}].unitCost"), money::parse_minor(c, currency)));
        if let Some(p) = price {
            total = total
                .and_then(|t| p.checked_mul(item.quantity).and_then(|x| t.checked_add(x)))
                .filter(|t| *t <= money::MAX_MINOR);
            lines.push((
                product,
                optional_text(v, &format!("lineItems[{i}].sku"), item.sku.clone(), 100),
                item.quantity,
                p,
                cost,
            ));
        }
    }
    if total.is_none() {
        v.add("lineItems", "total amount too large");
    }
    (lines, total)
}

/// Works out the amount from the entered amount and the line items.
fn resolve_amount(
    v: &mut Violations,
    amount: Option<&str>,
    currency: &str,
    lines: &Option<(Lines, Option<i64>)>,
    fallback: i64,
) -> i64 {
    let entered = amount.and_then(|a| v.check("amount", money::parse_minor(a, currency)));
    match (lines, entered) {
        (Some((items, Some(sum))), entered) if !items.is_empty() => {
            if entered.is_some_and(|e| e != *sum) {
                v.add("amount", format!("must equal the line items' total {}", money::format_minor(*sum, currency)));
            }
            *sum
        }
        (_, Some(e)) => e,
        _ => fallback,
    }
}

fn check_stage(v: &mut Violations, stage: DealStage, lost_reason: &Option<String>) {
    if stage == DealStage::Lost && lost_reason.is_none() {
        v.add("lostReason", "is required when a deal is lost");
    }
}

async fn insert_lines(txn: &impl ConnectionTrait, deal_id: Uuid, lines: Lines) -> AppResult<Vec<line::Model>> {
    let now = now();
    let mut out = Vec::with_capacity(lines.len());
    for (i, (product, sku, quantity, price, cost)) in lines.into_iter().enumerate() {
        out.push(
            line::ActiveModel {
                id: Set(new_id()),
                deal_id: Set(deal_id),
                position: Set(i as i32),
                product: Set(product),
                sku: Set(sku),
                quantity: Set(quantity),
                unit_price_minor: Set(price),
                unit_cost_minor: Set(cost),
                created_at: Set(now),
            }
            .insert(txn)
            .await?,
        );
    }
    Ok(out)
}

/// Records a deal with its line items; the caller is its salesperson. The customer is
/// regraded at the end of the write (the classification engine's finisher), or by the
/// caller that defers it (an import's chunk, once per customer in id order).
///
/// # Errors
/// NOT_FOUND (customer), FORBIDDEN, VALIDATION.
pub async fn create(
    db: &impl crate::kernel::store::Connection,
    actor: &Actor,
    input: NewDeal,
) -> AppResult<deal::Model> {
    let mut v = Violations::new();
    let title = required_text(&mut v, "title", &input.title, 200);
    let currency = v
        .check("currency", money::currency(input.currency.as_deref().unwrap_or(money::DEFAULT_CURRENCY)))
        .map(String::from)
        .unwrap_or_default();
    let lines = (!currency.is_empty()).then(|| check_lines(&mut v, &input.line_items, &currency));
    if input.amount.is_none() && input.line_items.is_empty() {
        v.add("amount", "give an amount or line items");
    }
    let amount =
        if currency.is_empty() { 0 } else { resolve_amount(&mut v, input.amount.as_deref(), &currency, &lines, 0) };
    let stage = input.stage.unwrap_or(DealStage::Lead);
    let lost_reason = optional_text(&mut v, "lostReason", input.lost_reason, 1000);
    check_stage(&mut v, stage, &lost_reason);
    let actual_close_date = input.actual_close_date.or((stage == DealStage::Won).then(|| now().date_naive()));
    write(db, async |txn| {
        let customer = check_parent::<deal::Entity>(txn, actor, input.customer_id).await?;
        v.into_result()?;
        let now = now();
        let m = deal::ActiveModel {
            id: Set(new_id()),
            customer_id: Set(customer.id),
            owner_id: Set(Some(actor.id())),
            title: Set(title),
            stage: Set(stage),
            amount_minor: Set(amount),
            currency: Set(currency),
            expected_close_date: Set(input.expected_close_date),
            actual_close_date: Set(actual_close_date),
            lost_reason: Set(lost_reason),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(txn)
        .await?;
        let items = insert_lines(txn, m.id, lines.map(|l| l.0).unwrap_or_default()).await?;
        change::record(
            txn,
            Some(actor.id()),
            Verb::Create,
            Subject::Deal,
            m.id,
            None,
            Some(&serde_json::json!({ "deal": m, "lineItems": items })),
        )
        .await?;
        Ok(m)
    })
    .await
}

/// Changes a deal; given line items replace the old ones and set the amount. The customer
/// is regraded at the end of the write, as on [`create`].
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, VALIDATION, CONFLICT.
pub async fn update(
    db: &impl crate::kernel::store::Connection,
    actor: &Actor,
    id: Uuid,
    version: i32,
    p: DealPatch,
) -> AppResult<deal::Model> {
    write(db, async |txn| {
        let old = load_for::<deal::Entity>(txn, actor, id, Action::Update, false, Some(version)).await?;
        let mut v = Violations::new();
        let mut am: deal::ActiveModel = old.clone().into();
        if let Some(t) = p.title {
            am.title = Set(required_text(&mut v, "title", &t, 200));
        }
        let currency = match p.currency {
            Some(c) => v.check("currency", money::currency(&c)).map_or_else(|| old.currency.clone(), String::from),
            None => old.currency.clone(),
        };
        if currency != old.currency && p.amount.is_none() && p.line_items.is_none() {
            v.add("currency", "changing the currency needs the amount or line items in it");
        }
        // What one may not read, one does not overwrite: amounts are a field group.
        let touches_amounts = p.amount.is_some() || p.line_items.is_some() || currency != old.currency;
        if touches_amounts {
            let placements = crate::customer::placements(txn, vec![old.customer_id]).await?;
            let (_, placement) = placements.first().copied().ok_or(crate::error::AppError::NotFound("customer"))?;
            crate::customer::may_change_fields(actor, &DEAL, placement, &[("amount", true)])?;
        }
        // A deal with line items takes its amount from them: an amount alone would leave
        // the two disagreeing.
        if p.amount.is_some() && p.line_items.is_none() {
            let items =
                sea_orm::PaginatorTrait::count(line::Entity::find().filter(line::Column::DealId.eq(old.id)), txn)
                    .await?;
            if items > 0 {
                v.add("amount", "this deal's amount is the sum of its line items: change the line items");
            }
        }
        let lines = p.line_items.as_ref().map(|items| check_lines(&mut v, items, &currency));
        let amount = resolve_amount(&mut v, p.amount.as_deref(), &currency, &lines, old.amount_minor);
        am.currency = Set(currency);
        am.amount_minor = Set(amount);
        let stage = p.stage.unwrap_or(old.stage);
        let lost_reason = match p.lost_reason {
            Some(r) => optional_text(&mut v, "lostReason", r, 1000),
            None => old.lost_reason.clone(),
        };
        check_stage(&mut v, stage, &lost_reason);
        am.stage = Set(stage);
        am.lost_reason = Set(lost_reason);
        if let Some(d) = p.expected_close_date {
            am.expected_close_date = Set(d);
        }
        match p.actual_close_date {
            Some(d) => am.actual_close_date = Set(d),
            None if stage == DealStage::Won && old.actual_close_date.is_none() => {
                am.actual_close_date = Set(Some(now().date_naive()))
            }
            None => {}
        }
        v.into_result()?;
        let new = save::<deal::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await?;
        if let Some((items, _)) = lines {
            let before = line_items(txn, &[id]).await?.remove(&id).unwrap_or_default();
            line::Entity::delete_many().filter(line::Column::DealId.eq(id)).exec(txn).await?;
            let after = insert_lines(txn, id, items).await?;
            change::record(
                txn,
                Some(actor.id()),
                Verb::ReplaceLineItems,
                Subject::Deal,
                id,
                Some(&before),
                Some(&after),
            )
            .await?;
        }

        Ok(new)
    })
    .await
}

/// Line items of several deals, in entry order, in one query.
pub async fn line_items(db: &impl ConnectionTrait, deal_ids: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<line::Model>>> {
    let rows = line::Entity::find()
        .filter(line::Column::DealId.is_in(deal_ids.to_vec()))
        .order_by_asc(line::Column::DealId)
        .order_by_asc(line::Column::Position)
        .all(db)
        .await?;
    let mut map: HashMap<Uuid, Vec<line::Model>> = HashMap::new();
    for r in rows {
        map.entry(r.deal_id).or_default().push(r);
    }
    Ok(map)
}
