//! Forward-only schema migrations. Each migration keeps its own identifiers and never
//! imports `entity`, so history stays frozen when the entities move on.
pub use sea_orm_migration::prelude::*;

mod grants;

mod m20261123_000001_core;
mod m20261123_000002_default_permissions;
mod m20261123_000003_classification;
mod m20261123_000004_change_indexes;
mod m20261123_000005_care;
mod m20261124_000006_drop_history_at_index;
mod m20261124_000007_sessions;
mod m20261125_000008_field_groups;
mod m20261125_000009_sealed_fields;
mod m20261125_000010_personal_data;
mod m20261125_000011_unique_id_numbers;
mod m20261126_000012_categories;
mod m20261126_000013_scope_indexes;
mod m20261126_000014_merged_into;
mod m20261126_000015_duplicate_reports;
mod m20261127_000016_imports;
mod m20261128_000017_api_keys;
mod m20261128_000018_idempotency_keys;
mod m20261128_000019_owned_since;
mod m20261129_000020_webhooks;
mod m20261206_000021_import_skipped;
mod m20261206_000022_event_trace;
mod m20261206_000023_list_order_indexes;
mod m20261207_000024_search_terms;
mod m20261207_000025_narrow_search_keys;
mod m20261207_000026_search_zone_index;
mod m20261207_000027_customer_page_indexes;
mod m20261207_000028_customer_tally;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_core::Migration),
            Box::new(m20261123_000002_default_permissions::Migration),
            Box::new(m20261123_000003_classification::Migration),
            Box::new(m20261123_000004_change_indexes::Migration),
            Box::new(m20261123_000005_care::Migration),
            Box::new(m20261124_000006_drop_history_at_index::Migration),
            Box::new(m20261124_000007_sessions::Migration),
            Box::new(m20261125_000008_field_groups::Migration),
            Box::new(m20261125_000009_sealed_fields::Migration),
            Box::new(m20261125_000010_personal_data::Migration),
            Box::new(m20261125_000011_unique_id_numbers::Migration),
            Box::new(m20261126_000012_categories::Migration),
            Box::new(m20261126_000013_scope_indexes::Migration),
            Box::new(m20261126_000014_merged_into::Migration),
            Box::new(m20261126_000015_duplicate_reports::Migration),
            Box::new(m20261127_000016_imports::Migration),
            Box::new(m20261128_000017_api_keys::Migration),
            Box::new(m20261128_000018_idempotency_keys::Migration),
            Box::new(m20261128_000019_owned_since::Migration),
            Box::new(m20261129_000020_webhooks::Migration),
            Box::new(m20261206_000021_import_skipped::Migration),
            Box::new(m20261206_000022_event_trace::Migration),
            Box::new(m20261206_000023_list_order_indexes::Migration),
            Box::new(m20261207_000024_search_terms::Migration),
            Box::new(m20261207_000025_narrow_search_keys::Migration),
            Box::new(m20261207_000026_search_zone_index::Migration),
            Box::new(m20261207_000027_customer_page_indexes::Migration),
            Box::new(m20261207_000028_customer_tally::Migration),
        ]
    }
}
