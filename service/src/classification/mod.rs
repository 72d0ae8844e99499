//! Customer classification: tiers, lifecycle, RFM, frequency and value classes,
//! relationship type and turnover x margin, computed from won deals under a policy kept as
//! data. The rules are in `docs/classification.md`.
//!
//! - [`policy`]: the policy and exchange rates (settings).
//! - [`grading`]: the rules, one pure function ([`grade`]).
//! - [`facts`]: the aggregates grading reads.
//! - [`incremental`]: one customer, inside the deal write that changed it; overrides.
//! - [`pass`]: every customer, in batches, in the background; runs and the daily pass.
//! - [`bulk`]: how a pass reads and writes grades in bulk, per backend.
mod bulk;
mod facts;
mod finish;
mod grading;
mod incremental;
mod pass;
mod policy;

pub use bulk::STORED_COLUMNS;
pub use facts::{cutoffs, fact_statements, facts};
pub use finish::deal_reason;
use grading::cutoffs_of;
pub use grading::{Facts, Grades, RfmCutoffs, grade};
pub use incremental::{history_of, recompute, set_override};
pub use pass::{create_run, daily_pass, reclassify_all, run_full_pass, runs, start_full_pass};
pub use policy::{Policy, Promotion, Rates, exchange_rates, policy, rates, read_policy, set_rate, update_policy};

/// Why a classification changed (stored with history rows and runs).
pub use entity::enums::ClassificationReason as Reason;
