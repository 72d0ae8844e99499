//! End-to-end tests: a real server per test on a fresh database (a temp SQLite file, or a
//! `crm_test_<uuid>` PostgreSQL database when TEST_DATABASE_URL is set), spoken to over HTTP.
mod helpers;

mod access;
mod addresses;
mod admin;
mod api_keys;
mod auth;
mod bulk;
mod care;
mod catalogue;
mod categories;
mod classification;
mod customers;
mod delivery;
mod demo;
mod duplicates;
mod edge;
mod examples;
mod exports;
mod fairness;
mod http;
mod idempotency;
mod imports;
mod keylists;
mod linked_imports;
mod matching;
mod operators;
mod pool;
mod privacy;
mod records;
mod reports;
mod schema;
mod sessions;
mod spreadsheets;
mod webhooks;
mod ws;
