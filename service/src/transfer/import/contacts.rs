//! Contacts imported the way customers are (`POST /imports/contacts`): each line names
//! the customer it belongs to by id or by the customer's natural key (phone, e-mail,
//! organisation name) and is matched against that customer's live contacts (id, then
//! mobile, e-mail, name). The contact service writes, in a savepoint of the chunk, so its
//! checks (scope, field groups, ID numbers) are the API's.
use crate::error::AppResult;
use crate::kernel::normalize;
use crate::kernel::types::Id;
use crate::records::contact as service;
use crate::transfer::import::parent::Attempt;
use crate::transfer::import::{Cells, Field, FieldName, Importer, Outcome, choice, date};
use entity::contact;
use entity::enums::{ContactRole, ImportOutcome, Resource};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

/// Each contact field an import reads (its other headers: `catalogue::CONTACT`).
pub(super) const FIELDS: &[FieldName] = &[
    (Field::Id, "id"),
    (Field::CustomerId, "customerId"),
    (Field::CustomerName, "customerName"),
    (Field::CustomerPhone, "customerPhone"),
    (Field::CustomerEmail, "customerEmail"),
    (Field::Name, "name"),
    (Field::Gender, "gender"),
    (Field::Title, "title"),
    (Field::DealRole, "dealRole"),
    (Field::Birthday, "birthday"),
    (Field::Mobile, "mobile"),
    (Field::OfficePhone, "officePhone"),
    (Field::Email, "email"),
    (Field::Address, "address"),
    (Field::Hometown, "hometown"),
    (Field::Hobbies, "hobbies"),
    (Field::Notes, "notes"),
];

/// Whether two versions of a contact hold the same (the address opened: sealing takes a
/// fresh nonce each time).
fn same(vault: &crate::kernel::vault::Keyring, a: &contact::Model, b: &contact::Model) -> bool {
    let plain = |m: &contact::Model| service::address(vault, m).ok().flatten();
    (&a.name, a.gender, &a.title, a.deal_role, a.birthday, &a.mobile, &a.office_phone, &a.email)
        == (&b.name, b.gender, &b.title, b.deal_role, b.birthday, &b.mobile, &b.office_phone, &b.email)
        && (&a.hometown, &a.hobbies, &a.notes) == (&b.hometown, &b.hobbies, &b.notes)
        && plain(a) == plain(b)
}

impl Importer<'_> {
    /// One contact line, in a savepoint of the chunk's transaction.
    pub(super) async fn contact_line(
        &mut self,
        txn: &DatabaseTransaction,
        number: i64,
        cells: &Cells,
    ) -> AppResult<Outcome> {
        let mut problems = Vec::new();
        let gender = crate::transfer::import::gender(&mut problems, cells);
        let deal_role = choice(
            &mut problems,
            "dealRole",
            cells.get(Field::DealRole),
            ContactRole::parse,
            &[
                ("决策者", ContactRole::DecisionMaker),
                ("内线", ContactRole::Insider),
                ("影响者", ContactRole::Influencer),
                ("反对者", ContactRole::Opponent),
            ],
            "DECISION_MAKER (决策者), INSIDER (内线), INFLUENCER (影响者), OPPONENT (反对者)",
        );
        let birthday = date(&mut problems, "birthday", cells.get(Field::Birthday));
        let parent = match self.parent_of::<contact::Entity>(txn, number, cells, problems.clone()).await? {
            Ok(parent) => parent,
            Err(outcome) => return Ok(outcome),
        };
        // Only contacts the importer may read are matched (and counted in a DUPLICATE).
        let siblings = contact::Entity::find()
            .filter(contact::Column::CustomerId.eq(parent.id))
            .filter(contact::Column::DeletedAt.is_null())
            .filter(crate::records::read_condition::<contact::Entity>(self.actor))
            .all(txn)
            .await?;
        let id = cells.get(Field::Id).and_then(|id| Uuid::parse_str(id).ok());
        // Mobile and e-mail match only where the importer sees contact details: a match
        // (or its absence) must not tell a number the importer could not read.
        let sees = self.actor.field_access(Resource::ContactDetails, Resource::Contact).admits((&parent).into());
        let mobile = cells.get(Field::Mobile).and_then(|m| normalize::phone_e164(m).ok()).filter(|_| sees);
        let email = cells.get(Field::Email).and_then(|e| normalize::email(e).ok()).filter(|_| sees);
        let name = cells.get(Field::Name).map(str::trim);
        let norm_phone = |p: &Option<String>| p.as_deref().and_then(|p| normalize::phone_e164(p).ok());
        let by_key: Vec<&contact::Model> = siblings
            .iter()
            .filter(|s| {
                id == Some(s.id)
                    || mobile.as_ref().is_some_and(|m| norm_phone(&s.mobile).as_ref() == Some(m))
                    || email.as_ref().is_some_and(|e| s.email.as_deref() == Some(e.as_str()))
            })
            .collect();
        // A name alone matches one contact of that name whose mobile and e-mail the line
        // does not contradict (two 张经理 with different numbers are two people).
        let by_name: Vec<&contact::Model> = if by_key.is_empty() {
            let agrees = |s: &contact::Model| {
                mobile.as_ref().is_none_or(|m| s.mobile.is_none() || norm_phone(&s.mobile).as_ref() == Some(m))
                    && email.as_ref().is_none_or(|e| s.email.is_none() || s.email.as_deref() == Some(e.as_str()))
            };
            siblings.iter().filter(|s| name == Some(s.name.as_str()) && agrees(s)).collect()
        } else {
            Vec::new()
        };
        let existing = match (by_key.as_slice(), by_name.as_slice()) {
            ([one], _) | ([], [one]) => Some((*one).clone()),
            ([], []) => None,
            (many, []) | ([], many) => {
                let message = format!("matches {} contacts of that customer; merge or correct them first", many.len());
                return Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)));
            }
            _ => None,
        };
        // A dry run's earlier chunks were rolled back: a repeat of a contact they created
        // reads as the update it will be.
        let remembered = [mobile.as_deref(), email.as_deref(), name]
            .into_iter()
            .flatten()
            .map(|k| format!("contact:{}:{k}", parent.id))
            .collect::<Vec<_>>();
        if existing.is_none()
            && let Some(repeat) = self.repeat_of(number, &remembered, "contact", None, problems.clone())
        {
            return Ok(repeat);
        }
        let text = |f: Field| cells.text(f);
        let matched = existing.is_some();
        // Each write in a savepoint of its own: undone when the line's own cells had
        // problems (the service's checks still run, so every bad cell is listed) or when
        // it changes nothing (a re-run leaves versions and the audit trail alone).
        let sp = txn.begin().await?;
        let result = match existing {
            None => {
                let input = service::NewContact {
                    customer_id: Id::new(parent.id),
                    name: text(Field::Name).unwrap_or_default(),
                    gender,
                    title: text(Field::Title),
                    deal_role,
                    birthday,
                    mobile: text(Field::Mobile),
                    office_phone: text(Field::OfficePhone),
                    email: text(Field::Email),
                    address: text(Field::Address),
                    hometown: text(Field::Hometown),
                    hobbies: text(Field::Hobbies),
                    id_number: None,
                    notes: text(Field::Notes),
                };
                service::create(&sp, self.vault, self.actor, input)
                    .await
                    .map(|m| Outcome::new(number, ImportOutcome::Created, Some(m.id), None))
            }
            Some(old) => {
                let set = |f: Field| text(f).map(Some);
                let patch = service::ContactPatch {
                    name: text(Field::Name),
                    gender: gender.map(Some),
                    title: set(Field::Title),
                    deal_role: deal_role.map(Some),
                    birthday: birthday.map(Some),
                    mobile: set(Field::Mobile),
                    office_phone: set(Field::OfficePhone),
                    email: set(Field::Email),
                    address: set(Field::Address),
                    hometown: set(Field::Hometown),
                    hobbies: set(Field::Hobbies),
                    id_number: None,
                    notes: set(Field::Notes),
                };
                service::update(&sp, self.vault, self.actor, old.id, old.version, patch).await.map(|new| {
                    let outcome =
                        if same(self.vault, &old, &new) { ImportOutcome::Unchanged } else { ImportOutcome::Updated };
                    Outcome::new(number, outcome, Some(new.id), None)
                })
            }
        };
        // A contact the importer may not change is someone else's, as a customer is.
        let attempt = Attempt { number, parent, matched, problems, remembered, forbidden_is_theirs: true };
        Ok(self.settle(txn, sp, attempt, result).await?.0)
    }
}
