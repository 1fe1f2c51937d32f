//! What a plan is made of: one change per remote object, with field-level diffs for updates.

use std::fmt;

use crate::alert::AlertSettings;
use crate::integration::IntegrationSettings;
use crate::list::ListWrite;
use crate::model::{Address, Location};

/// One remote write the plan calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Alert(AlertChange),
    Integration(IntegrationChange),
    List(ListChange),
}

/// A change to one site alert, found by its tag name.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertChange {
    pub address: Address,
    pub site: String,
    pub tag_name: String,
    pub op: Op<AlertSettings>,
}

/// A change to one site or corp integration.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationChange {
    pub address: Address,
    pub location: Location,
    pub kind: String,
    pub op: Op<IntegrationSettings>,
}

/// A change to one site or corp list: created with its active entries, or entries added and
/// removed (never replaced wholesale).
#[derive(Clone, Debug, PartialEq)]
pub struct ListChange {
    pub address: Address,
    pub location: Location,
    pub name: String,
    pub op: Op<ListWrite>,
}

/// Create, update in place, or delete.
#[derive(Clone, Debug, PartialEq)]
pub enum Op<T> {
    Create(T),
    /// `desired` is the full managed state to send; `diffs` lists what differs, for people.
    Update {
        id: String,
        diffs: Vec<FieldDiff>,
        desired: T,
    },
    Delete {
        id: String,
    },
}

impl<T> Op<T> {
    pub fn verb(&self) -> Verb {
        match self {
            Op::Create(_) => Verb::Create,
            Op::Update { .. } => Verb::Update,
            Op::Delete { .. } => Verb::Delete,
        }
    }
}

impl Change {
    pub fn verb(&self) -> Verb {
        match self {
            Change::Alert(change) => change.op.verb(),
            Change::Integration(change) => change.op.verb(),
            Change::List(change) => change.op.verb(),
        }
    }

    /// Names of the fields an update changes (empty for a create or delete).
    pub fn updated_fields(&self) -> Vec<&'static str> {
        let diffs = match self {
            Change::Alert(AlertChange {
                op: Op::Update { diffs, .. },
                ..
            })
            | Change::Integration(IntegrationChange {
                op: Op::Update { diffs, .. },
                ..
            })
            | Change::List(ListChange {
                op: Op::Update { diffs, .. },
                ..
            }) => diffs.as_slice(),
            _ => &[],
        };
        diffs.iter().map(|diff| diff.field).collect()
    }

    /// The declaration the change comes from (or came from, for a removal).
    pub fn address(&self) -> &Address {
        match self {
            Change::Alert(change) => &change.address,
            Change::Integration(change) => &change.address,
            Change::List(change) => &change.address,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Create,
    Update,
    Delete,
}

/// One field that differs between the remote object and the declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub before: Shown,
    pub after: Shown,
}

/// A field value as it may be shown to people: secrets never are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Rendered as JSON (`10`, `true`, `"lessThan"`, `["flag"]`).
    Value(String),
    Sensitive,
    Absent,
}

impl Shown {
    pub fn json(value: impl serde::Serialize) -> Shown {
        // Serializing plain strings, numbers and lists cannot fail; fall back to a marker if it ever does.
        Shown::Value(serde_json::to_string(&value).unwrap_or_else(|_| "(unprintable)".to_string()))
    }

    /// The text a drift report (status, Events) shows: a secret only says that it differs.
    pub fn in_drift_report(&self) -> String {
        match self {
            Shown::Sensitive => "(sensitive: differs)".to_string(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Value(value) => f.write_str(value),
            Shown::Sensitive => f.write_str("(sensitive value)"),
            Shown::Absent => f.write_str("(none)"),
        }
    }
}

/// Counts per verb, for the plan's last line and for exit codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

impl Summary {
    pub fn of(changes: &[Change]) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
            match change.verb() {
                Verb::Create => summary.create += 1,
                Verb::Update => summary.update += 1,
                Verb::Delete => summary.delete += 1,
            }
        }
        summary
    }

    pub fn is_empty(&self) -> bool {
        self.create + self.update + self.delete == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to change, {} to delete",
            self.create, self.update, self.delete
        )
    }
}
