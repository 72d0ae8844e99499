//! The feedback's fields.
use super::{FieldSpec as F, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::Feedback;

pub static FEEDBACK: RecordCatalogue = RecordCatalogue {
    subject: Subject::Feedback,
    resource: Feedback,
    fields: &[
        F::new("customerId").filter(),
        F::new("kind").filter(),
        F::new("channel").filter(),
        F::new("status").filter().sort(),
        F::new("handlerId").filter(),
        F::new("rating").filter(),
        F::new("nps").filter(),
        F::new("createdAt").filter().sort(),
        F::new("updatedAt").sort(),
        F::new("resolvedAt").filter(),
        // What the customer said and what was answered.
        F::new("content").erased(),
        F::new("resolution").erased(),
    ],
};
