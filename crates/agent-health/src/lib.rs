//! Agent health: evaluates every site's agents on a schedule and tells people once, in the tools they
//! already use, until someone acknowledges it or it recovers.
//!
//! - [`Evaluator`] runs one evaluation: every site's agents against the [`Rules`], folded into the
//!   [`State`] in the [`StateStore`] with compare-and-swap, then the due notifications through a
//!   [`Deliverer`]. Pure inside: the checks, the notification state machine and the payloads.
//! - [`acknowledge`] and [`unacknowledge`] change the state directly (the CLI); [`AckService`] with
//!   [`router`] or [`serve`] is the signed-link acknowledgement endpoint.
//! - [`environment`] is the deployed jobs the Lambda shells run, [`metrics`] their CloudWatch lines,
//!   [`webhook`] what a webhook receiver needs to check a delivery's signature.

mod ack;
mod channels;
mod checks;
mod clock;
mod engine;
pub mod environment;
mod evaluator;
mod incidents;
mod links;
pub mod metrics;
mod pages;
mod period;
mod rules;
mod secrets;
mod state;
mod store;
mod web;

pub use ack::{
    AckError, AckOutcome, AckRequest, AckTarget, acknowledge, acknowledge_with_site, firing_checks,
    silenced_channels, unacknowledge,
};
pub use channels::{ConsoleSink, Deliverer, DeliveryError, webhook};
pub use checks::{CheckKind, ConditionKey, Severity};
pub use clock::{Clock, ManualClock, SystemClock};
pub use evaluator::{Evaluator, RunError, RunReport, new_run_id};
pub use incidents::{IncidentOutcome, IncidentSync};
pub use links::AckLink;
pub use period::Period;
pub use rules::{AckRules, Rules, RulesError};
pub use secrets::{ACK_KEY_FIELD, SecretError, SecretResolver, SigningKey};
pub use state::{
    AckAction, AckMethod, ChannelState, Condition, IncidentAction, IncidentUpdate, State,
};
pub use store::{StateStore, StoreError, UpdateError};
pub use web::{AckService, router, serve};
