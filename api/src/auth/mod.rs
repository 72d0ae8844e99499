//! Authentication (JWT, passwords) and authorization (the Actor and its row scope).
pub mod actor;
pub mod jwt;
pub mod password;
pub mod scope;
pub mod session;

pub use actor::{Actor, Grant};
pub use jwt::{Claims, JwtKeys};
pub use scope::{FieldAccess, Placement, Reach};
pub use session::{Change, Sessions};
