//! Contact type, inputs, filters, queries and mutations.
use super::common::{
    Date, DateTimeFilter, EnumFilter, IdFilter, SortDirection, StringFilter, actor, connection, db, parse_id, state,
};
use super::customer::{Customer, patch};
use super::enums::{ContactRole, Gender};
use super::error::ResultExt;
use super::loaders::shows_under;
use super::record::{record_queries, record_trash};
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result};
use chrono::{DateTime, Utc};
use entity::contact::{self};
use entity::enums::Resource;
use service::catalogue::CONTACT;
use service::kernel::types::Id;
use service::records::contact as svc;
use service::records::contact::{ContactPatch, NewContact, SortField};

/// A person at an organization customer.
#[derive(Clone)]
pub struct Contact(pub contact::Model);

impl Contact {
    /// `value` when the caller sees the field group `group` on this contact, else None.
    /// `value` if the caller sees field `name` (its group is the contact catalogue's).
    async fn shown<T>(&self, ctx: &Context<'_>, name: &str, value: Option<T>) -> Result<Option<T>> {
        let Some(v) = value else { return Ok(None) };
        let Some(group) = CONTACT.group(name) else { return Ok(Some(v)) };
        Ok(shows_under(ctx, group, Resource::Contact, self.0.customer_id).await?.then_some(v))
    }
}

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn gender(&self) -> Option<Gender> {
        self.0.gender.map(Into::into)
    }
    /// Job title.
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    /// Role in buying decisions.
    async fn deal_role(&self) -> Option<ContactRole> {
        self.0.deal_role.map(Into::into)
    }
    /// Personal details: null for roles that may not see them on this contact.
    async fn birthday(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        Ok(self.shown(ctx, "birthday", self.0.birthday).await?.map(Date))
    }
    /// Contact details: null for roles that may not see them on this contact.
    async fn mobile(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.shown(ctx, "mobile", self.0.mobile.as_deref()).await
    }
    /// Contact details.
    async fn office_phone(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.shown(ctx, "officePhone", self.0.office_phone.as_deref()).await
    }
    /// Contact details.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.shown(ctx, "email", self.0.email.as_deref()).await
    }
    /// Contact details; sealed at rest.
    async fn address(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let sealed = self.shown(ctx, "address", self.0.address.as_deref()).await?;
        if sealed.is_none() {
            return Ok(None);
        }
        svc::address(&state(ctx).privacy.keys, &self.0).gql()
    }
    /// Personal details.
    async fn hometown(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.shown(ctx, "hometown", self.0.hometown.as_deref()).await
    }
    /// Personal details.
    async fn hobbies(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.shown(ctx, "hobbies", self.0.hobbies.as_deref()).await
    }
    /// The resident ID number, masked (personal details; sealed at rest, never shown in full).
    async fn id_number_masked(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.shown(ctx, "idNumber", self.0.id_number.as_deref()).await?.is_none() {
            return Ok(None);
        }
        Ok(svc::id_number(&state(ctx).privacy.keys, &self.0).gql()?.as_deref().map(svc::mask_id_number))
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

connection!(ContactConnection, ContactEdge, Contact, "contacts");

/// Filter of the contact list.
#[derive(InputObject, Default)]
pub struct ContactFilter {
    pub and: Option<Vec<ContactFilter>>,
    pub or: Option<Vec<ContactFilter>>,
    pub customer_id: Option<IdFilter>,
    pub name: Option<StringFilter>,
    pub title: Option<StringFilter>,
    pub deal_role: Option<EnumFilter<ContactRole>>,
    pub mobile: Option<StringFilter>,
    pub email: Option<StringFilter>,
    pub created_at: Option<DateTimeFilter>,
}

/// Sortable contact fields.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "SortField")]
pub enum ContactSortField {
    Name,
    CreatedAt,
    UpdatedAt,
}

/// One sort key; ties are ordered by id.
#[derive(InputObject)]
pub struct ContactOrder {
    pub field: ContactSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

/// A new contact of an organization customer.
#[derive(InputObject)]
pub struct CreateContactInput {
    pub customer_id: ID,
    pub name: String,
    pub gender: Option<Gender>,
    pub title: Option<String>,
    pub deal_role: Option<ContactRole>,
    pub birthday: Option<Date>,
    pub mobile: Option<String>,
    pub office_phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub hometown: Option<String>,
    pub hobbies: Option<String>,
    /// Resident ID number; stored, only ever shown masked.
    pub id_number: Option<String>,
    pub notes: Option<String>,
}

/// Changes to a contact; omitted fields stay, `null` clears.
#[derive(InputObject)]
pub struct UpdateContactInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub gender: MaybeUndefined<Gender>,
    pub title: MaybeUndefined<String>,
    pub deal_role: MaybeUndefined<ContactRole>,
    pub birthday: MaybeUndefined<Date>,
    pub mobile: MaybeUndefined<String>,
    pub office_phone: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub address: MaybeUndefined<String>,
    pub hometown: MaybeUndefined<String>,
    pub hobbies: MaybeUndefined<String>,
    pub id_number: MaybeUndefined<String>,
    pub notes: MaybeUndefined<String>,
}

record_queries!(
    ContactQuery,
    contact,
    contacts,
    Contact,
    ContactConnection,
    ContactFilter,
    ContactOrder,
    "A contact you may read (NOT_FOUND otherwise).",
    "Contacts you may read; `deleted: true` lists the trash."
);

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    /// Adds a contact to an organization customer.
    async fn create_contact(&self, ctx: &Context<'_>, input: CreateContactInput) -> Result<Contact> {
        let actor = actor(ctx)?;
        let new = NewContact {
            customer_id: parse_id("customerId", &input.customer_id).map(Id::new).gql()?,
            name: input.name,
            gender: input.gender.map(Into::into),
            title: input.title,
            deal_role: input.deal_role.map(Into::into),
            birthday: input.birthday.map(|d| d.0),
            mobile: input.mobile,
            office_phone: input.office_phone,
            email: input.email,
            address: input.address,
            hometown: input.hometown,
            hobbies: input.hobbies,
            id_number: input.id_number,
            notes: input.notes,
        };
        svc::create(db(ctx), &state(ctx).privacy.keys, actor, new).await.map(Contact).gql()
    }

    /// Changes a contact. CONFLICT when `version` is stale.
    async fn update_contact(&self, ctx: &Context<'_>, input: UpdateContactInput) -> Result<Contact> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let p = ContactPatch {
            name: input.name,
            gender: patch(input.gender, Into::into),
            title: patch(input.title, |s| s),
            deal_role: patch(input.deal_role, Into::into),
            birthday: patch(input.birthday, |d| d.0),
            mobile: patch(input.mobile, |s| s),
            office_phone: patch(input.office_phone, |s| s),
            email: patch(input.email, |s| s),
            address: patch(input.address, |s| s),
            hometown: patch(input.hometown, |s| s),
            hobbies: patch(input.hobbies, |s| s),
            id_number: patch(input.id_number, |s| s),
            notes: patch(input.notes, |s| s),
        };
        svc::update(db(ctx), &state(ctx).privacy.keys, actor, id, input.version, p).await.map(Contact).gql()
    }
}

record_trash!(
    ContactTrash,
    contact,
    Contact,
    delete_contact,
    restore_contact,
    "Moves a contact to the trash.",
    "Restores a contact from the trash."
);
