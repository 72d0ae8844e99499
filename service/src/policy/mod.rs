//! The policies admins set, as data kept in one row each: the care policy (contact
//! standards, reminder rules, the contact-frequency cap, the public pool's clock, holding
//! caps, how far back a contact may be logged). The record writes read it (a holding cap
//! when a customer comes to someone, the bound on backdating) and so does the care engine;
//! it stands below both. The rules it drives are in `docs/care.md`.
pub mod care;
