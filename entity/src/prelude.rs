//! Entity re-exports under their table names.
pub use crate::audit_log::Entity as AuditLog;
pub use crate::contact::Entity as Contact;
pub use crate::customer::Entity as Customer;
pub use crate::deal::Entity as Deal;
pub use crate::deal_line_item::Entity as DealLineItem;
pub use crate::department::Entity as Department;
pub use crate::feedback::Entity as Feedback;
pub use crate::interaction::Entity as Interaction;
pub use crate::role_permission::Entity as RolePermission;
pub use crate::setting::Entity as Setting;
pub use crate::user::Entity as User;
