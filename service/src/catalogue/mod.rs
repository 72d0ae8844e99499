//! One catalogue per record (customer, contact, deal, feedback, interaction): for each
//! field its name, the keys of its stored row, its field group (who may read and write
//! it), whether lists filter and sort by it, its import headers (Chinese and English), its
//! export column, whether a merge may choose it and whether a category template may
//! require it.
//!
//! Every path reads it: GraphQL masking and the CSV export ([`RecordCatalogue::group`] through
//! [`Visible`]), list filters and sort keys (`access::list`), import mapping
//! (`transfer::import`), audit and personal-data masking ([`RecordCatalogue::mask`]), merge
//! choices (`customer::merge`), templates and completeness (`category::built_in`).
//! A field in no group (as a customer's `gender`: base profile data, with the name) is
//! read with the row on every path.
use crate::kernel::change::{Change, Subject};
use entity::enums::Resource;
use serde_json::Value;

mod contact;
mod customer;
mod deal;
mod feedback;
mod interaction;

pub use contact::CONTACT;
pub use customer::CUSTOMER;
pub use deal::DEAL;
pub use feedback::FEEDBACK;
pub use interaction::INTERACTION;

/// How an import treats a field's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    /// Not a column of a file.
    No,
    /// Read into the field; the column may be headed by its name or any of these.
    Field(&'static [&'static str]),
    /// An export-only column (a fact the system keeps): an import reads past it, so an
    /// exported file imports back as it is.
    ReadPast,
}

/// One field of a record.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// Its name on the API: GraphQL, filters, sort keys, export headers, import targets.
    pub name: &'static str,
    /// The keys of the stored row (as serialised in audit values, the personal-data
    /// export) that hold it.
    pub stored: &'static [&'static str],
    /// The field group whose grant it needs; `None`: read with the row.
    pub group: Option<Resource>,
    pub filter: bool,
    pub sort: bool,
    pub import: Import,
    /// A column of the CSV export (in catalogue order).
    pub export: bool,
    /// A merge may take it from a merged record.
    pub merge: bool,
    /// A category template may require it.
    pub template: bool,
    /// An erasure of the person's data overwrites it (`personal::erase`), in the record and
    /// in the audit trail.
    pub erase: bool,
}

impl FieldSpec {
    /// A field read with the row, stored under no key of its own, used nowhere yet.
    pub const fn new(name: &'static str) -> FieldSpec {
        FieldSpec {
            name,
            stored: &[],
            group: None,
            filter: false,
            sort: false,
            import: Import::No,
            export: false,
            merge: false,
            template: false,
            erase: false,
        }
    }
    pub const fn stored(self, keys: &'static [&'static str]) -> Self {
        FieldSpec { stored: keys, ..self }
    }
    pub const fn group(self, group: Resource) -> Self {
        FieldSpec { group: Some(group), ..self }
    }
    pub const fn filter(self) -> Self {
        FieldSpec { filter: true, ..self }
    }
    pub const fn sort(self) -> Self {
        FieldSpec { sort: true, ..self }
    }
    /// Imported, under its name or these headers.
    pub const fn import(self, headers: &'static [&'static str]) -> Self {
        FieldSpec { import: Import::Field(headers), ..self }
    }
    /// Exported; an import reads past it.
    pub const fn exported(self) -> Self {
        FieldSpec { export: true, import: Import::ReadPast, ..self }
    }
    /// Not exported, but read past by an import.
    pub const fn read_past(self) -> Self {
        FieldSpec { import: Import::ReadPast, ..self }
    }
    /// Exported, and imported under its name or these headers.
    pub const fn both(self, headers: &'static [&'static str]) -> Self {
        FieldSpec { export: true, import: Import::Field(headers), ..self }
    }
    pub const fn merge(self) -> Self {
        FieldSpec { merge: true, ..self }
    }
    /// An erasure overwrites it.
    pub const fn erased(self) -> Self {
        FieldSpec { erase: true, ..self }
    }
    /// A merge may take it and a template may require it.
    pub const fn profile(self) -> Self {
        FieldSpec { merge: true, template: true, ..self }
    }
}

/// The fields a record under a customer (a contact, a deal) begins with in a file: its id,
/// and the customer it belongs to, named by id, name, phone or e-mail (an import finds it
/// by any; the export writes the id and the name).
const ID: FieldSpec = FieldSpec::new("id").both(&[]);
const CUSTOMER_ID: FieldSpec = FieldSpec::new("customerId").filter().both(&[]);
const CUSTOMER_NAME: FieldSpec =
    FieldSpec::new("customerName").both(&["客户", "客户名称", "公司", "公司名称", "单位", "单位名称"]);
const CUSTOMER_PHONE: FieldSpec = FieldSpec::new("customerPhone").import(&["客户电话"]);
const CUSTOMER_EMAIL: FieldSpec = FieldSpec::new("customerEmail").import(&["客户邮箱"]);

/// The fields of one record kind.
#[derive(Debug)]
pub struct RecordCatalogue {
    pub subject: Subject,
    /// The resource whose grants read the record.
    pub resource: Resource,
    pub fields: &'static [FieldSpec],
}

impl RecordCatalogue {
    /// The field named `name` on the API.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The group of the field named `name` (`None`: read with the row, or no such field).
    pub fn group(&self, name: &str) -> Option<Resource> {
        self.field(name).and_then(|f| f.group)
    }

    /// The stored column of the field named `name` (its first stored key: `phoneE164` is
    /// `phone_norm`, `name` is `name` beside `name_norm`).
    pub fn column(&self, name: &str) -> Option<String> {
        self.field(name).and_then(|f| stored_keys(f).into_iter().next())
    }

    /// The CSV export's columns, in order.
    pub fn export_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().filter(|f| f.export).map(|f| f.name)
    }

    /// The fields an import reads, with their other headers.
    pub fn import_fields(&self) -> impl Iterator<Item = (&'static str, &'static [&'static str])> + '_ {
        self.fields.iter().filter_map(|f| match f.import {
            Import::Field(headers) => Some((f.name, headers)),
            _ => None,
        })
    }

    /// The export-only columns an import reads past.
    pub fn read_past(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().filter(|f| f.import == Import::ReadPast).map(|f| f.name)
    }

    /// Whether a merge may take the field named `name`.
    pub fn mergeable(&self, name: &str) -> bool {
        self.field(name).is_some_and(|f| f.merge)
    }

    /// The fields a template may require.
    pub fn template_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().filter(|f| f.template).map(|f| f.name)
    }

    /// The stored keys an erasure overwrites, in the audit trail's values.
    pub fn erased_keys(&self) -> Vec<String> {
        self.fields.iter().filter(|f| f.erase).flat_map(stored_keys).collect()
    }

    /// Masks, at any depth of a stored row's JSON, the non-null values of the fields whose
    /// group `visible` hides to [`HIDDEN`].
    pub fn mask(&self, value: &mut Value, visible: &Visible) {
        let hidden: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| f.group.is_some_and(|g| !visible.group(g)))
            .flat_map(|f| f.stored.iter().copied())
            .collect();
        if !hidden.is_empty() {
            hide(value, &hidden);
        }
    }
}

/// The fields (catalogue names) a change touched: those whose stored keys hold other
/// values after it than before (every field with a value, for a created or removed row);
/// empty for a change of no record kind. Offline sync and search read this to know what
/// to send or reindex.
pub fn changed_fields(change: &Change) -> Vec<&'static str> {
    let Some(catalogue) = of(change.subject) else { return Vec::new() };
    // A key of the row (a created deal's row is under `deal`), or of each item of a list
    // (a deal's line items: under `lineItems`, or the whole row when they were replaced).
    let value = |row: &Option<Value>, key: &str| -> Vec<Value> {
        let Some(row) = row else { return Vec::new() };
        let items: Vec<&Value> = match row {
            Value::Array(items) => items.iter().collect(),
            _ => {
                let mut found = vec![row.get("deal").unwrap_or(row)];
                if let Some(Value::Array(lines)) = row.get("lineItems") {
                    found.extend(lines);
                }
                found
            }
        };
        items.into_iter().filter_map(|r| r.get(key)).filter(|v| !v.is_null()).cloned().collect()
    };
    catalogue
        .fields
        .iter()
        .filter(|f| stored_keys(f).iter().any(|k| value(&change.old, k) != value(&change.new, k)))
        .map(|f| f.name)
        .collect()
}

/// The keys of the stored row that hold a field: the catalogue's, or its name in snake
/// case when it names none.
fn stored_keys(f: &FieldSpec) -> Vec<String> {
    if f.stored.is_empty() { vec![snake_case(f.name)] } else { f.stored.iter().map(|k| k.to_string()).collect() }
}

/// `cooperationStartDate` → `cooperation_start_date`: a field's stored key when the
/// catalogue names none.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The catalogue of the records audited as `subject`, if it is one.
pub fn of(subject: Subject) -> Option<&'static RecordCatalogue> {
    match subject {
        Subject::Customer => Some(&CUSTOMER),
        Subject::Contact => Some(&CONTACT),
        Subject::Deal => Some(&DEAL),
        Subject::Feedback => Some(&FEEDBACK),
        Subject::Interaction => Some(&INTERACTION),
        _ => None,
    }
}

/// What a hidden value reads as in stored rows (audit values, the personal-data export).
pub const HIDDEN: &str = "[hidden]";

fn hide(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.contains(&k.as_str()) && !v.is_null() {
                    *v = Value::String(HIDDEN.into());
                } else {
                    hide(v, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| hide(v, keys)),
        _ => {}
    }
}

/// The field groups one reader sees on one record: decided once per record (by whatever
/// grant the path reads through) and asked per field.
#[derive(Debug, Clone, Copy)]
pub struct Visible {
    contact_details: bool,
    personal_details: bool,
    deal_amount: bool,
}

impl Visible {
    /// The groups for which `shows` says yes.
    pub fn of(shows: impl Fn(Resource) -> bool) -> Visible {
        Visible {
            contact_details: shows(Resource::ContactDetails),
            personal_details: shows(Resource::PersonalDetails),
            deal_amount: shows(Resource::DealAmount),
        }
    }

    /// Whether the group shows (a resource that is no field group always does).
    pub fn group(&self, group: Resource) -> bool {
        match group {
            Resource::ContactDetails => self.contact_details,
            Resource::PersonalDetails => self.personal_details,
            Resource::DealAmount => self.deal_amount,
            _ => true,
        }
    }

    /// Whether field `name` of `catalogue` shows.
    pub fn field(&self, catalogue: &RecordCatalogue, name: &str) -> bool {
        catalogue.group(name).is_none_or(|g| self.group(g))
    }

    /// `value` if field `name` of `catalogue` shows.
    pub fn show<T>(&self, catalogue: &RecordCatalogue, name: &str, value: Option<T>) -> Option<T> {
        value.filter(|_| self.field(catalogue, name))
    }
}

/// Field groups in the order of `Resource`.
pub const GROUPS: [Resource; 3] = [Resource::ContactDetails, Resource::PersonalDetails, Resource::DealAmount];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique_and_grouped_fields_are_stored() {
        for c in [&CUSTOMER, &CONTACT, &DEAL, &FEEDBACK, &INTERACTION] {
            let mut names: Vec<&str> = c.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "{:?} names a field twice", c.subject);
            for f in c.fields.iter().filter(|f| f.group.is_some()) {
                assert!(!f.stored.is_empty(), "{:?}.{} is grouped but masks no stored key", c.subject, f.name);
                assert!(GROUPS.contains(&f.group.unwrap()));
            }
            assert_eq!(of(c.subject).map(|x| x.subject), Some(c.subject));
        }
    }

    fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
        names.sort_unstable();
        names
    }

    fn filters<E: crate::access::list::Listing>() -> Vec<&'static str> {
        sorted(E::FILTER.iter().map(|f| f.name).collect())
    }

    #[test]
    fn lists_filter_by_what_the_catalogues_say() {
        use crate::access::list::Listing;
        let declared = |c: &RecordCatalogue| sorted(c.fields.iter().filter(|f| f.filter).map(|f| f.name).collect());
        assert_eq!(filters::<entity::customer::Entity>(), declared(&CUSTOMER));
        assert_eq!(filters::<entity::contact::Entity>(), declared(&CONTACT));
        assert_eq!(filters::<entity::deal::Entity>(), declared(&DEAL));
        assert_eq!(filters::<entity::feedback::Entity>(), declared(&FEEDBACK));
        assert_eq!(filters::<entity::interaction::Entity>(), declared(&INTERACTION));
        assert!(std::ptr::eq(<entity::customer::Entity as Listing>::CATALOGUE, &CUSTOMER));
        assert!(std::ptr::eq(<entity::deal::Entity as Listing>::CATALOGUE, &DEAL));
    }

    #[test]
    fn a_change_names_the_catalogue_fields_it_touched() {
        let id = uuid::Uuid::now_v7();
        let old = json!({"name": "李雷", "phone": "138", "phone_norm": "+86138", "credit_rating": null, "version": 1});
        let new = json!({"name": "李雷", "phone": "139", "phone_norm": "+86139", "credit_rating": "AA", "version": 2});
        let change =
            Change::new(Subject::Customer, crate::kernel::change::Verb::Update, id, None, Some(&old), Some(&new));
        assert_eq!(changed_fields(&change), ["phone", "phoneE164", "creditRating"]);
        let deal = json!({"deal": {"stage": "WON", "amount_minor": 100}, "lineItems": []});
        let created = Change::new(Subject::Deal, crate::kernel::change::Verb::Create, id, None, None, Some(&deal));
        assert_eq!(changed_fields(&created), ["stage", "amount"]);
        let before = json!([{"unit_price_minor": 100, "unit_cost_minor": 60}]);
        let after = json!([{"unit_price_minor": 120, "unit_cost_minor": 60}]);
        let lines = Change::new(
            Subject::Deal,
            crate::kernel::change::Verb::ReplaceLineItems,
            id,
            None,
            Some(&before),
            Some(&after),
        );
        assert_eq!(changed_fields(&lines), ["unitPrice"]);
        assert_eq!(snake_case("cooperationStartDate"), "cooperation_start_date");
    }

    #[test]
    fn gender_is_read_with_the_row() {
        assert_eq!(CUSTOMER.field("gender").map(|f| f.group), Some(None));
        assert_eq!(CONTACT.field("gender").map(|f| f.group), Some(None));
        let mut row = json!({"gender": "FEMALE", "birthday": "1990-01-01", "phone": "138", "phone_norm": "+86138"});
        CUSTOMER.mask(&mut row, &Visible::of(|_| false));
        assert_eq!(row, json!({"gender": "FEMALE", "birthday": HIDDEN, "phone": HIDDEN, "phone_norm": HIDDEN}));
    }
}
