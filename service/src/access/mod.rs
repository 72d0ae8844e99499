//! Who is asking and what they may do: authentication (JWT, passwords, logins and refresh
//! tokens, API keys), the Actor and its row scope, the per-user caps and login throttle,
//! and the people and departments that scopes are made of.
pub mod actor;
pub mod api_key;
pub mod budget;
pub mod department;
pub mod heavy;
pub mod jwt;
pub mod list;
pub mod live;
pub mod login;
pub mod password;
pub mod permission;
pub mod scope;
pub mod session;
pub mod throttle;
pub mod user;

pub use actor::{Actor, Grant};
pub use jwt::{Claims, JwtKeys};
pub use scope::{FieldAccess, Placement, Reach};
pub use session::{Change, Sessions};
