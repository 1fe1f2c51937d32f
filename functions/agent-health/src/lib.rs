//! Agent health: evaluates every site's agents on a schedule and tells people once, in the tools they
//! already use, until someone acknowledges it or it recovers.
//!
//! Pure core: [`rules`] (the rules document), [`checks`] (per-site checks), [`engine`] (the notification
//! state machine), [`ack`] and [`links`] (acknowledgements and signed links), [`channels`] (payloads).
//! I/O: [`store`] (the state document with compare-and-swap), [`secrets`], [`job`] (one evaluation run),
//! [`web`] (the acknowledgement pages), [`lambda`] (the Lambda shells' configuration and handlers).

pub mod ack;
pub mod channels;
pub mod checks;
pub mod clock;
pub mod engine;
pub mod job;
pub mod lambda;
pub mod links;
pub mod metrics;
pub mod pages;
pub mod period;
pub mod rules;
pub mod secrets;
pub mod state;
pub mod store;
pub mod web;
