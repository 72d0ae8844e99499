//! Contacts: the people at an organization customer (seed 004 contact template).
use crate::access::Actor;
use crate::access::list::Listing;
use crate::catalogue::CONTACT;
use crate::choice;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::pagination::{SortKey, SortValue};
use crate::kernel::store::{save, write};
use crate::kernel::types::CustomerId;
use crate::kernel::vault::Keyring;
use crate::kernel::{Patch, clean, new_id, normalize, now, optional_text, required_text};
use crate::records::{check_parent, load_for};
use chrono::NaiveDate;
use entity::contact::{self, Column};
use entity::enums::{Action, ContactRole, CustomerKind, Gender};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

/// A new contact.
#[derive(Clone)]
pub struct NewContact {
    pub customer_id: CustomerId,
    pub name: String,
    pub gender: Option<Gender>,
    pub title: Option<String>,
    pub deal_role: Option<ContactRole>,
    pub birthday: Option<NaiveDate>,
    pub mobile: Option<String>,
    pub office_phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub hometown: Option<String>,
    pub hobbies: Option<String>,
    pub id_number: Option<String>,
    pub notes: Option<String>,
}

impl NewContact {
    /// A contact of `customer_id` with only a name.
    pub fn new(customer_id: CustomerId, name: String) -> NewContact {
        NewContact {
            customer_id,
            name,
            gender: None,
            title: None,
            deal_role: None,
            birthday: None,
            mobile: None,
            office_phone: None,
            email: None,
            address: None,
            hometown: None,
            hobbies: None,
            id_number: None,
            notes: None,
        }
    }
}

/// Changes to a contact; `None` leaves a field, `Some(None)` clears it.
#[derive(Default, Clone)]
pub struct ContactPatch {
    pub name: Option<String>,
    pub gender: Patch<Gender>,
    pub title: Patch<String>,
    pub deal_role: Patch<ContactRole>,
    pub birthday: Patch<NaiveDate>,
    pub mobile: Patch<String>,
    pub office_phone: Patch<String>,
    pub email: Patch<String>,
    pub address: Patch<String>,
    pub hometown: Patch<String>,
    pub hobbies: Patch<String>,
    pub id_number: Patch<String>,
    pub notes: Patch<String>,
}

/// Sortable contact fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    CreatedAt,
    UpdatedAt,
}

pub fn sort_key(field: SortField, descending: bool) -> SortKey<contact::Entity> {
    let (name, column, value): (_, _, fn(&contact::Model) -> SortValue) = match field {
        SortField::Name => ("name", Column::Name, |m| SortValue::Text(m.name.clone())),
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
        SortField::UpdatedAt => ("updatedAt", Column::UpdatedAt, |m| SortValue::Time(m.updated_at)),
    };
    SortKey::new(name, column, descending, value)
}

impl Listing for contact::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::CONTACT;
    type Custom = crate::kernel::filter::NoCustom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::CreatedAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("customerId", Column::CustomerId, Kind::Id),
        Field::new("name", Column::Name, Kind::Text),
        Field::new("title", Column::Title, Kind::Text),
        Field::new("dealRole", Column::DealRole, choice!(entity::enums::ContactRole)),
        Field::new("mobile", Column::Mobile, Kind::Text),
        Field::new("email", Column::Email, Kind::Text),
        Field::new("createdAt", Column::CreatedAt, Kind::Time),
    ];
    const CUSTOMER_COLUMN: Option<Column> = Some(Column::CustomerId);
    fn sort_key(field: &SortField, descending: bool, _: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        Ok(sort_key(*field, descending))
    }
}

/// The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number.
fn id_check_digit(first17: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    CHECK[(sum % 11) as usize]
}

/// Checks a mainland resident ID number: 18 characters with the ISO 7064 check digit. The
/// old 15-digit form (issued before 1999, birth year in two digits, born 19xx) is turned
/// into its 18-character form, so one person has one number whichever card was shown.
pub fn check_id_number(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_uppercase();
    let bytes = s.as_bytes();
    if s.len() == 15 && bytes.iter().all(u8::is_ascii_digit) {
        let mut long = Vec::with_capacity(18);
        long.extend_from_slice(&bytes[..6]);
        long.extend_from_slice(b"19");
        long.extend_from_slice(&bytes[6..]);
        long.push(id_check_digit(&long));
        return Ok(String::from_utf8(long).unwrap_or_default());
    }
    if s.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err("must be an 18-character resident ID number".into());
    }
    if bytes[17] != id_check_digit(&bytes[..17]) {
        return Err("check digit does not match".into());
    }
    Ok(s)
}

/// Masks an ID number for display: the region prefix and the last four stay.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn phone(v: &mut Violations, field: &str, value: Option<String>) -> Option<String> {
    let value = clean(value);
    if let Some(p) = &value {
        v.check(field, normalize::phone_e164(p));
    }
    value
}

fn birthday(v: &mut Violations, b: Option<NaiveDate>) {
    if let Some(b) = b
        && !crate::kernel::plausible_birthday(b)
    {
        v.add("birthday", "must be between 1900-01-01 and today");
    }
}

/// Field names under which sealed contact values are bound (`vault`).
pub const ID_NUMBER: &str = "contact.id_number";
pub const ADDRESS: &str = "contact.address";

/// The sealed ID number of contact `id` and its blind index.
fn seal_id_number(vault: &Keyring, id: Uuid, number: Option<String>) -> (Option<String>, Option<String>) {
    match number {
        Some(n) => (Some(vault.seal(ID_NUMBER, id, &n)), Some(vault.index(ID_NUMBER, &n))),
        None => (None, None),
    }
}

/// DUPLICATE when another live contact of the same customer has this ID number (found
/// through its blind index under any configured key).
async fn check_id_number_free(
    txn: &impl ConnectionTrait,
    vault: &Keyring,
    customer: Uuid,
    own: Uuid,
    number: &str,
) -> AppResult<()> {
    let taken = contact::Entity::find()
        .filter(Column::CustomerId.eq(customer))
        .filter(Column::IdNumberIndex.is_in(vault.indexes(ID_NUMBER, number)))
        .filter(Column::DeletedAt.is_null())
        .filter(Column::Id.ne(own))
        .count(txn)
        .await?;
    if taken > 0 {
        return Err(AppError::Duplicate {
            key: "idNumber",
            department: None,
            message: "another contact of this customer has this ID number".into(),
        });
    }
    Ok(())
}

/// After a contact went to or came back from the trash: one coming back must not share
/// its ID number with a live contact of its customer, under whichever key either was
/// sealed (`service/record.rs` moves it, in the same transaction).
pub(super) async fn after_trash(
    txn: &sea_orm::DatabaseTransaction,
    _actor: &Actor,
    vault: &Keyring,
    row: &contact::Model,
) -> AppResult<()> {
    if row.deleted_at.is_some() {
        return Ok(());
    }
    match id_number(vault, row)? {
        Some(n) => check_id_number_free(txn, vault, row.customer_id, row.id, &n).await,
        None => Ok(()),
    }
}

/// The plain ID number of a contact (opened; legacy plain text passes through).
///
/// # Errors
/// INTERNAL when it does not open.
pub fn id_number(vault: &Keyring, c: &contact::Model) -> AppResult<Option<String>> {
    c.id_number.as_deref().map(|v| vault.open(ID_NUMBER, c.id, v)).transpose()
}

/// The plain address of a contact.
///
/// # Errors
/// INTERNAL when it does not open.
pub fn address(vault: &Keyring, c: &contact::Model) -> AppResult<Option<String>> {
    c.address.as_deref().map(|v| vault.open(ADDRESS, c.id, v)).transpose()
}

/// Adds a contact to an organization customer.
///
/// # Errors
/// NOT_FOUND (customer), FORBIDDEN, VALIDATION, DUPLICATE (ID number).
pub async fn create(
    db: &impl crate::kernel::store::Connection,
    vault: &Keyring,
    actor: &Actor,
    input: NewContact,
) -> AppResult<contact::Model> {
    let mut v = Violations::new();
    let name = required_text(&mut v, "name", &input.name, 100);
    birthday(&mut v, input.birthday);
    let mobile = phone(&mut v, "mobile", input.mobile);
    let office_phone = phone(&mut v, "officePhone", input.office_phone);
    let email = clean(input.email).and_then(|e| v.check("email", normalize::email(&e))).map(String::from);
    let id_number = clean(input.id_number).and_then(|i| v.check("idNumber", check_id_number(&i)));
    let title = optional_text(&mut v, "title", input.title, 100);
    let address = optional_text(&mut v, "address", input.address, 500);
    let hometown = optional_text(&mut v, "hometown", input.hometown, 100);
    let hobbies = optional_text(&mut v, "hobbies", input.hobbies, 1000);
    let notes = optional_text(&mut v, "notes", input.notes, 4000);
    write(db, async |txn| {
        let customer = check_parent::<contact::Entity>(txn, actor, input.customer_id).await?;
        if customer.kind != CustomerKind::Organization {
            v.add("customerId", "contacts belong to organization customers");
        }
        v.into_result()?;
        let now = now();
        let id = new_id();
        if let Some(n) = &id_number {
            check_id_number_free(txn, vault, customer.id, id, n).await?;
        }
        let (id_number, id_number_index) = seal_id_number(vault, id, id_number);
        let m = contact::ActiveModel {
            id: Set(id),
            customer_id: Set(customer.id),
            name: Set(name),
            gender: Set(input.gender),
            title: Set(title),
            deal_role: Set(input.deal_role),
            birthday: Set(input.birthday),
            mobile: Set(mobile),
            office_phone: Set(office_phone),
            email: Set(email),
            address: Set(address.map(|a| vault.seal(ADDRESS, id, &a))),
            hometown: Set(hometown),
            hobbies: Set(hobbies),
            id_number: Set(id_number),
            id_number_index: Set(id_number_index),
            notes: Set(notes),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Contact, m.id, None, Some(&m)).await?;
        Ok(m)
    })
    .await
}

/// Changes a contact.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, VALIDATION, CONFLICT.
pub async fn update(
    db: &impl crate::kernel::store::Connection,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
    version: i32,
    p: ContactPatch,
) -> AppResult<contact::Model> {
    write(db, async |txn| {
        let old = load_for::<contact::Entity>(txn, actor, id, Action::Update, false, Some(version)).await?;
        let touched = [
            ("mobile", p.mobile.is_some()),
            ("officePhone", p.office_phone.is_some()),
            ("email", p.email.is_some()),
            ("address", p.address.is_some()),
            ("birthday", p.birthday.is_some()),
            ("hometown", p.hometown.is_some()),
            ("hobbies", p.hobbies.is_some()),
            ("idNumber", p.id_number.is_some()),
        ];
        if touched.iter().any(|(name, t)| *t && CONTACT.group(name).is_some()) {
            let placements = crate::customer::placements(txn, vec![old.customer_id]).await?;
            let (_, placement) = placements.first().copied().ok_or(AppError::NotFound("customer"))?;
            crate::customer::may_change_fields(actor, &CONTACT, placement, &touched)?;
        }
        let mut v = Violations::new();
        let mut am: contact::ActiveModel = old.clone().into();
        if let Some(n) = p.name {
            am.name = Set(required_text(&mut v, "name", &n, 100));
        }
        if let Some(g) = p.gender {
            am.gender = Set(g);
        }
        if let Some(t) = p.title {
            am.title = Set(optional_text(&mut v, "title", t, 100));
        }
        if let Some(r) = p.deal_role {
            am.deal_role = Set(r);
        }
        if let Some(b) = p.birthday {
            birthday(&mut v, b);
            am.birthday = Set(b);
        }
        if let Some(m) = p.mobile {
            am.mobile = Set(phone(&mut v, "mobile", m));
        }
        if let Some(o) = p.office_phone {
            am.office_phone = Set(phone(&mut v, "officePhone", o));
        }
        if let Some(e) = p.email {
            am.email = Set(clean(e).and_then(|e| v.check("email", normalize::email(&e))).map(String::from));
        }
        if let Some(a) = p.address {
            am.address = Set(optional_text(&mut v, "address", a, 500).map(|a| vault.seal(ADDRESS, id, &a)));
        }
        if let Some(h) = p.hometown {
            am.hometown = Set(optional_text(&mut v, "hometown", h, 100));
        }
        if let Some(h) = p.hobbies {
            am.hobbies = Set(optional_text(&mut v, "hobbies", h, 1000));
        }
        let id_number_changed = p.id_number.is_some();
        if let Some(i) = p.id_number {
            let number = clean(i).and_then(|i| v.check("idNumber", check_id_number(&i)));
            if let Some(n) = &number {
                check_id_number_free(txn, vault, old.customer_id, id, n).await?;
            }
            let (sealed, index) = seal_id_number(vault, id, number);
            am.id_number = Set(sealed);
            am.id_number_index = Set(index);
        }
        if let Some(n) = p.notes {
            am.notes = Set(optional_text(&mut v, "notes", n, 4000));
        }
        v.into_result()?;
        let set = am.id_number.try_as_ref().is_some_and(Option::is_some);
        let saved = save::<contact::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await?;
        if id_number_changed {
            // The number never enters the audit log; that it changed does.
            let what =
                serde_json::json!({"customer_id": old.customer_id, "id_number": if set { "set" } else { "cleared" }});
            change::record(txn, Some(actor.id()), Verb::IdNumberChange, Subject::Contact, id, None, Some(&what))
                .await?;
        }
        Ok(saved)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers() {
        assert_eq!(check_id_number("11010519491231002x"), Ok("11010519491231002X".into()));
        assert_eq!(check_id_number("110105491231002"), Ok("11010519491231002X".into()), "the old 15-digit form");
        assert!(check_id_number("110105194912310021").is_err());
        assert!(check_id_number("12345").is_err());
        assert_eq!(mask_id_number("11010519491231002X"), "110***********002X");
    }
}
