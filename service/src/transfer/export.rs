//! The records themselves as a file (`docs/import-export.md`; CSV or .xlsx, `table`):
//! those the caller may read,
//! with the caller's field grants applied per record (a field group the caller may not see
//! on a record is an empty cell; each column's group is its record's catalogue's), a page
//! at a time. The customer file imports back: its headers are the import's field names,
//! and the extra columns are ones the import reads past. The HTTP route that streams it is
//! the api's (`api/src/files.rs`).
use crate::access::list::ListQuery;
use crate::access::{Actor, Placement};
use crate::catalogue::{CONTACT, CUSTOMER, DEAL, Visible};
use crate::category::Catalogue;
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::pagination::{Cursor, Page, PageArgs};
use crate::kernel::vault::Keyring;
use crate::kernel::{money, new_id};
use crate::records::contact;
use crate::transfer::table::{Cell, Rest, Row, Table};
use crate::{customer, records as record};
use entity::enums::Resource;
use entity::{contact as contact_row, customer as customer_row, deal as deal_row, department, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Rows per page read (the list services' largest page).
const PAGE: i32 = 100;

/// What can be exported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum What {
    Customers,
    Contacts,
    Deals,
}

impl What {
    /// From the file's name without its extension.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "customers" => Some(Self::Customers),
            "contacts" => Some(Self::Contacts),
            "deals" => Some(Self::Deals),
            _ => None,
        }
    }

    /// What the export's audit row is about, and the file's name.
    pub fn subject(self) -> Subject {
        match self {
            Self::Customers => Subject::CustomerList,
            Self::Contacts => Subject::ContactList,
            Self::Deals => Subject::DealList,
        }
    }
}

/// An export in progress: where it stands and what it looked up so far.
pub struct Export {
    what: What,
    db: DatabaseConnection,
    vault: Arc<Keyring>,
    actor: Actor,
    filter: Option<Json>,
    after: Option<String>,
    done: bool,
    /// Custom field keys of the catalogue, one column each (customers).
    custom: Vec<String>,
    users: HashMap<Uuid, String>,
    departments: HashMap<Uuid, String>,
}

fn opt<T: ToString>(v: Option<T>) -> Cell {
    Cell::of(v)
}

/// A custom value as a cell: text as is, a number as a number, a list joined with `;` (as
/// the import splits it).
fn custom_cell(v: Option<&Json>) -> Cell {
    match v {
        None | Some(Json::Null) => Cell::Empty,
        Some(Json::String(s)) => Cell::Text(s.clone()),
        Some(Json::Number(n)) => n.as_i64().map_or_else(|| Cell::Decimal(n.to_string()), Cell::Int),
        Some(Json::Bool(b)) => Cell::Bool(*b),
        Some(Json::Array(items)) => Cell::Text(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Some(other) => Cell::Text(other.to_string()),
    }
}

impl Export {
    /// The column names.
    fn header(&self) -> Vec<String> {
        match self.what {
            What::Customers => {
                let custom = self.custom.iter().map(|k| format!("custom.{k}"));
                CUSTOMER.export_columns().map(str::to_string).chain(custom).collect()
            }
            What::Contacts => CONTACT.export_columns().map(str::to_string).collect(),
            What::Deals => DEAL.export_columns().map(str::to_string).collect(),
        }
    }

    fn query<S>(&self) -> ListQuery<S> {
        ListQuery {
            filter: self.filter.clone(),
            order: Vec::new(),
            deleted: false,
            page: PageArgs { first: Some(PAGE), after: self.after.clone() },
        }
    }

    fn advance<M>(&mut self, page: &Page<M>) {
        self.after = page.edges.last().map(|(c, _): &(Cursor, M)| c.encode());
        self.done = !page.has_next_page || self.after.is_none();
    }

    /// The rows of the next page; None when every row has been sent.
    pub async fn next_chunk(&mut self) -> AppResult<Option<Vec<Row>>> {
        if self.done {
            return Ok(None);
        }
        let rows = match self.what {
            What::Customers => {
                let page = customer::list(&self.db, &self.actor, &self.query()).await?;
                self.advance(&page);
                self.customers(page.edges.into_iter().map(|(_, m)| m).collect()).await?
            }
            What::Contacts => {
                let page = record::list::<contact_row::Entity>(&self.db, &self.actor, &self.query()).await?;
                self.advance(&page);
                self.contacts(page.edges.into_iter().map(|(_, m)| m).collect()).await?
            }
            What::Deals => {
                let page = record::list::<deal_row::Entity>(&self.db, &self.actor, &self.query()).await?;
                self.advance(&page);
                self.deals(page.edges.into_iter().map(|(_, m)| m).collect()).await?
            }
        };
        Ok(Some(rows))
    }

    /// The field groups the exporter sees on a record of `over` under a customer placed
    /// at `at` (each column's group is its record's catalogue's).
    fn visible(&self, over: Resource, at: Placement) -> Visible {
        self.actor.visible(over, at)
    }

    /// Names of the users among `ids` not looked up yet.
    async fn learn_users(&mut self, ids: impl Iterator<Item = Uuid>) -> AppResult<()> {
        let missing: Vec<Uuid> = ids.filter(|id| !self.users.contains_key(id)).collect();
        if !missing.is_empty() {
            for u in user::Entity::find().filter(user::Column::Id.is_in(missing)).all(&self.db).await? {
                self.users.insert(u.id, u.name);
            }
        }
        Ok(())
    }

    async fn learn_departments(&mut self, ids: impl Iterator<Item = Uuid>) -> AppResult<()> {
        let missing: Vec<Uuid> = ids.filter(|id| !self.departments.contains_key(id)).collect();
        if !missing.is_empty() {
            for d in department::Entity::find().filter(department::Column::Id.is_in(missing)).all(&self.db).await? {
                self.departments.insert(d.id, d.name);
            }
        }
        Ok(())
    }

    fn user_name(&self, id: Option<Uuid>) -> Cell {
        Cell::of(id.and_then(|id| self.users.get(&id)))
    }

    async fn customers(&mut self, rows: Vec<customer_row::Model>) -> AppResult<Vec<Row>> {
        self.learn_users(rows.iter().filter_map(|c| c.owner_id)).await?;
        self.learn_departments(rows.iter().map(|c| c.department_id)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for c in &rows {
            let at: Placement = c.into();
            let v = self.visible(Resource::Customer, at);
            let address = if v.field(&CUSTOMER, "address") { customer::address(&self.vault, c)? } else { None };
            let mut cells: Row = vec![
                Cell::Text(c.id.to_string()),
                Cell::Text(c.kind.to_string()),
                Cell::Text(c.category.clone()),
                Cell::Text(c.name.clone()),
                opt(c.gender),
                v.show(&CUSTOMER, "birthday", c.birthday).into(),
                opt(v.show(&CUSTOMER, "phone", c.phone.as_ref())),
                opt(v.show(&CUSTOMER, "email", c.email.as_ref())),
                opt(address),
                opt(c.region.as_ref()),
                opt(c.industry.as_ref()),
                opt(c.source),
                opt(c.importance),
                opt(c.credit_rating.as_ref()),
                c.cooperation_start_date.into(),
                Cell::Text(c.lifecycle_stage.to_string()),
                Cell::Text(c.tier.to_string()),
                self.user_name(c.owner_id),
                opt(self.departments.get(&c.department_id)),
                c.created_at.into(),
                c.updated_at.into(),
            ];
            debug_assert_eq!(cells.len(), CUSTOMER.export_columns().count(), "a cell per catalogue column");
            cells.extend(self.custom.iter().map(|k| custom_cell(c.custom_fields.as_ref().and_then(|o| o.get(k)))));
            out.push(cells);
        }
        Ok(out)
    }

    /// Name and placement of the customers the rows hang off.
    async fn parents(&self, ids: impl Iterator<Item = Uuid>) -> AppResult<HashMap<Uuid, (String, Placement)>> {
        let mut ids: Vec<Uuid> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<(Uuid, String, Option<Uuid>, Uuid)> = customer_row::Entity::find()
            .select_only()
            .columns([
                customer_row::Column::Id,
                customer_row::Column::Name,
                customer_row::Column::OwnerId,
                customer_row::Column::DepartmentId,
            ])
            .filter(customer_row::Column::Id.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, owner_id, department_id)| (id, (name, Placement { owner_id, department_id })))
            .collect())
    }

    async fn contacts(&mut self, rows: Vec<contact_row::Model>) -> AppResult<Vec<Row>> {
        let parents = self.parents(rows.iter().map(|c| c.customer_id)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for c in &rows {
            let Some((customer_name, at)) = parents.get(&c.customer_id) else { continue };
            let v = self.visible(Resource::Contact, *at);
            let address = if v.field(&CONTACT, "address") { contact::address(&self.vault, c)? } else { None };
            let cells: Row = vec![
                Cell::Text(c.id.to_string()),
                Cell::Text(c.customer_id.to_string()),
                Cell::Text(customer_name.clone()),
                Cell::Text(c.name.clone()),
                opt(c.gender),
                opt(c.title.as_ref()),
                opt(c.deal_role),
                v.show(&CONTACT, "birthday", c.birthday).into(),
                opt(v.show(&CONTACT, "mobile", c.mobile.as_ref())),
                opt(v.show(&CONTACT, "officePhone", c.office_phone.as_ref())),
                opt(v.show(&CONTACT, "email", c.email.as_ref())),
                opt(address),
                opt(v.show(&CONTACT, "hometown", c.hometown.as_ref())),
                opt(v.show(&CONTACT, "hobbies", c.hobbies.as_ref())),
                opt(c.notes.as_ref()),
                c.created_at.into(),
                c.updated_at.into(),
            ];
            debug_assert_eq!(cells.len(), CONTACT.export_columns().count(), "a cell per catalogue column");
            out.push(cells);
        }
        Ok(out)
    }

    async fn deals(&mut self, rows: Vec<deal_row::Model>) -> AppResult<Vec<Row>> {
        let parents = self.parents(rows.iter().map(|d| d.customer_id)).await?;
        self.learn_users(rows.iter().filter_map(|d| d.owner_id)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for d in &rows {
            let Some((customer_name, at)) = parents.get(&d.customer_id) else { continue };
            let v = self.visible(Resource::Deal, *at);
            let amount = v.show(&DEAL, "amount", Some(d.amount_minor)).map(|a| money::format_minor(a, &d.currency));
            let cells: Row = vec![
                Cell::Text(d.id.to_string()),
                Cell::Text(d.customer_id.to_string()),
                Cell::Text(customer_name.clone()),
                Cell::Text(d.title.clone()),
                Cell::Text(d.stage.to_string()),
                amount.map_or(Cell::Empty, Cell::Decimal),
                Cell::Text(d.currency.clone()),
                d.expected_close_date.into(),
                d.actual_close_date.into(),
                opt(d.lost_reason.as_ref()),
                self.user_name(d.owner_id),
                d.created_at.into(),
                d.updated_at.into(),
            ];
            debug_assert_eq!(cells.len(), DEAL.export_columns().count(), "a cell per catalogue column");
            out.push(cells);
        }
        Ok(out)
    }
}

/// Starts an export for `actor`: checks the read grant and the filter (JSON in the shape
/// of the GraphQL filter input), reads the first page, and audits who took which records
/// out with what filter. Returns the file with its first page read, so a bad filter or a
/// missing grant is an error before any byte is sent.
///
/// # Errors
/// FORBIDDEN (no read grant), VALIDATION (filter), database errors.
pub async fn start(
    db: &DatabaseConnection,
    vault: Arc<Keyring>,
    actor: Actor,
    what: What,
    filter: Option<&str>,
) -> AppResult<Table> {
    let resource = match what {
        What::Customers => Resource::Customer,
        What::Contacts => Resource::Contact,
        What::Deals => Resource::Deal,
    };
    actor.require(resource, entity::enums::Action::Read)?;
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(|f| serde_json::from_str::<Json>(f).map_err(|e| AppError::invalid("filter", format!("not JSON: {e}"))))
        .transpose()?;
    let custom = if what == What::Customers {
        // The fields of categories open to the caller: another department's template is
        // not the caller's to know.
        let catalogue = Catalogue::load(db).await?;
        let open = crate::category::visible(db, &actor, &catalogue).await?;
        let mut keys: Vec<String> = Vec::new();
        for f in open.iter().flat_map(|c| c.fields.iter()) {
            if !keys.contains(&f.key) {
                keys.push(f.key.clone());
            }
        }
        keys
    } else {
        Vec::new()
    };
    let mut export = Export {
        what,
        db: db.clone(),
        vault,
        actor,
        filter,
        after: None,
        done: false,
        custom,
        users: HashMap::new(),
        departments: HashMap::new(),
    };
    let header = export.header();
    let first = export.next_chunk().await?.unwrap_or_default();
    // Who took which records out, and with what filter.
    let filter = serde_json::json!({ "filter": export.filter });
    change::record(db, Some(export.actor.id()), Verb::Export, what.subject(), new_id(), None, Some(&filter)).await?;
    Ok(Table::new(what.subject().to_string(), header, first, Rest::Export(Box::new(export))))
}
