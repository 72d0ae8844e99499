//! The care engine: contact standards per tier and role, follow-up compliance, reminder
//! rules, the contact-frequency cap, message templates and the reminders themselves. The
//! rules are in `docs/care.md`.
//!
//! The rules are evaluated once per day ([`evaluate`]) and write reminders with
//! `INSERT ... ON CONFLICT DO NOTHING` on the unique key (rule, target, occasion), so a
//! reminder exists once whatever the number of instances, restarts or re-runs. Delivery
//! ([`deliver`]) claims due reminders with one conditional UPDATE, so each `reminderDue`
//! event is raised by exactly one instance.
//!
//! - [`policy`] (`crate::policy::care`): standards, rules and caps as data.
//! - [`calendar`]: holidays. [`templates`]: the message library.
//! - [`facts`]: who contacted whom, when. [`compliance`]: expected vs done.
//! - [`rules`]: the daily evaluation. [`cap`]: the frequency cap.
//! - [`schedule`]: the tick. [`reminders`]: a user's reminders.
mod calendar;
mod cap;
mod compliance;
mod facts;
mod follow_ups;
mod pool;
mod reminders;
mod rules;
mod schedule;
mod templates;

use crate::policy::care as policy;

pub use calendar::{add_holiday, delete_holiday, holiday_in, holidays};
pub use compliance::{Compliance, CustomerCompliance, Expectation, OwnerCompliance, compliance};
pub use follow_ups::{PersonLoad, create_follow_up, team_load, team_reminders};
pub use policy::{
    CarePolicy, CarePolicyPatch, CategoryDays, FrequencyCap, HoldingCap, PoolReturn, PoolReturnPatch, Rule, Standard,
    TierDays, change_policy, check_holding_cap, policy, update_policy,
};
pub use reminders::{complete, dismiss, my_reminders, snooze};
pub use rules::evaluate;
pub use schedule::{Tick, tick};
pub use templates::{save_template, templates};
