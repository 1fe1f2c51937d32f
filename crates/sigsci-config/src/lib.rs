//! Configuration as code for Signal Sciences: the pure diff between declared agent alerts,
//! integrations and lists and what the API holds. The operator and `sigsci-kit config` share it;
//! it does no I/O (no Kubernetes, no HTTP), so every rule is a table test.

pub mod alert;
pub mod change;
pub mod claims;
#[cfg(test)]
mod fixtures;
pub mod integration;
pub mod list;
pub mod managed;
pub mod model;
pub mod plan;
pub mod prune;
pub mod render;
pub mod sensitive;
pub mod validate;

pub use alert::{DesiredAlert, ObservedAlert, plan_alert, plan_alert_removal};
pub use change::{
    AlertChange, Change, FieldDiff, IntegrationChange, ListChange, Op, Shown, Summary, Verb,
};
pub use claims::{Claimant, check_claims};
pub use integration::{
    DesiredIntegration, ObservedIntegration, plan_integration, plan_integration_removal,
};
pub use list::{
    DesiredEntry, DesiredList, ListReport, ListType, ListWrite, ObservedList, find_list, plan_list,
    plan_list_removal,
};
pub use managed::{AppliedState, Managed, ManagedObject};
pub use model::{
    Address, AlertDeletionPolicy, IntegrationDeletionPolicy, IntegrationScope, IntegrationType,
    Location, ManagementPolicy, Metric, ThresholdOperator,
};
pub use plan::{DesiredState, ObservedState, Plan, PlanOptions, Reads, bindings, plan, plan_split};
pub use prune::{Outcome, Removal, plan_removals, render_plan_with_removals};
pub use render::{render_observe_only, render_plan};
pub use sensitive::Sensitive;
pub use validate::{Problem, Problems};
