//! The interaction's fields.
use super::{FieldSpec as F, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::Interaction;

pub static INTERACTION: RecordCatalogue = RecordCatalogue {
    subject: Subject::Interaction,
    resource: Interaction,
    fields: &[
        F::new("customerId").filter(),
        F::new("contactId").filter(),
        F::new("userId").filter(),
        F::new("kind").filter(),
        F::new("occurredAt").filter().sort(),
        F::new("createdAt").sort(),
        F::new("nextFollowUpOn").filter(),
        // What was said: free text about the person.
        F::new("summary").erased(),
        F::new("outcome").erased(),
    ],
};
