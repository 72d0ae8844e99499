//! Every rule of the CRM: access, validation, scope, writes, audit, events, classification,
//! care, import and export, webhooks. Nothing here knows GraphQL or HTTP: this crate's
//! `Cargo.toml` has no async-graphql, axum, hyper or tower, so the boundary is the
//! compiler's. Functions take an [`Actor`](access::Actor) and plain Rust input and return
//! [`AppResult`](error::AppResult).
//!
//! Folders in their order (`docs/architecture.md`); a lower one never imports a higher one:
//! `error`, `kernel` and `catalogue`, then `access`, then `policy`, then `category`, then
//! the record families (`customer`, `records`), then the engines.
pub mod catalogue;
pub mod error;
pub mod kernel;

pub mod access;

pub mod policy;

pub mod category;

pub mod customer;
pub mod records;

pub mod audit;
pub mod care;
pub mod classification;
pub mod compiled;
pub mod keylists;
pub mod personal;
pub mod reports;
pub mod search;
pub mod transfer;
pub mod webhook;

pub mod demo;

#[cfg(test)]
mod layers;
