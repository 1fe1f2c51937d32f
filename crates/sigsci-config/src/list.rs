//! Lists (IP, country, string, wildcard) as code: entries with optional expiry, reconciled as a
//! set. Only the difference is written (the API's additions/deletions form), so entries another
//! writer adds between our read and our write survive unless `Full` management removes them as
//! drift on a later pass.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::change::{Change, FieldDiff, ListChange, Op, Shown};
use crate::model::{Address, Location, ManagementPolicy};
use crate::validate::{Problems, check_site_name};

/// What a list's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    /// IPv4/IPv6 addresses and CIDR ranges.
    Ip,
    /// ISO 3166-1 alpha-2 country codes.
    Country,
    /// Exact strings.
    String,
    /// Strings with `*` wildcards.
    Wildcard,
}

impl ListType {
    pub fn as_str(self) -> &'static str {
        match self {
            ListType::Ip => "ip",
            ListType::Country => "country",
            ListType::String => "string",
            ListType::Wildcard => "wildcard",
        }
    }

    /// Why `value` is not an entry of this type, if it is not.
    pub fn check_value(self, value: &str) -> Result<(), &'static str> {
        if value.trim().is_empty() {
            return Err("must not be empty");
        }
        if value.len() > MAX_ENTRY_LENGTH {
            return Err("must be at most 256 characters");
        }
        match self {
            ListType::Ip if !is_ip_or_cidr(value) => {
                Err("must be an IPv4/IPv6 address or CIDR range")
            }
            ListType::Country if !COUNTRY_CODES.contains(&value) => {
                Err("must be an ISO 3166-1 alpha-2 country code (upper case)")
            }
            _ => Ok(()),
        }
    }
}

/// The API's limits on names, descriptions and entry values.
pub const MAX_NAME_LENGTH: usize = 32;
pub const MAX_DESCRIPTION_LENGTH: usize = 140;
pub const MAX_ENTRY_LENGTH: usize = 256;

/// ISO 3166-1 alpha-2, as list entries of type `country` take them.
pub const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An address, or a range whose prefix fits the address family.
pub fn is_ip_or_cidr(value: &str) -> bool {
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|prefix| {
        prefix.bytes().all(|b| b.is_ascii_digit())
            && prefix.parse::<u8>().is_ok_and(|bits| bits <= max)
    })
}

/// One declared entry: a value, until when it holds, and why (the comment stays in Git; the
/// API keeps bare values).
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredEntry {
    pub value: String,
    pub expires: Option<DateTime<Utc>>,
    pub comment: String,
}

impl DesiredEntry {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
}

/// A `SigSciList` as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredList {
    pub address: Address,
    pub location: Location,
    pub name: String,
    pub list_type: ListType,
    pub description: String,
    pub entries: Vec<DesiredEntry>,
    pub management: ManagementPolicy,
    /// The remote id recorded by an earlier apply, if any.
    pub remote_id: Option<String>,
}

/// A list as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedList {
    pub id: String,
    pub name: String,
    pub list_type: String,
    pub description: String,
    pub entries: Vec<String>,
}

/// What a create sends, or what an update adds and removes.
#[derive(Clone, Debug, PartialEq)]
pub struct ListWrite {
    pub name: String,
    pub list_type: ListType,
    /// `None` on an update that leaves the description alone.
    pub description: Option<String>,
    /// The entries of a create; those to add on an update.
    pub additions: Vec<String>,
    pub deletions: Vec<String>,
}

impl ListWrite {
    pub fn shown_fields(&self) -> Vec<(&'static str, Shown)> {
        vec![
            ("name", Shown::json(&self.name)),
            ("type", Shown::json(self.list_type.as_str())),
            (
                "description",
                Shown::json(self.description.as_deref().unwrap_or_default()),
            ),
            ("entries", Shown::json(&self.additions)),
        ]
    }
}

/// Where a list stands at `now`: for status, and for when to look again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListReport {
    /// Declared entries not yet expired.
    pub active: usize,
    /// Declared entries past their expiry.
    pub expired: usize,
    /// The soonest expiry still ahead.
    pub next_expiry: Option<DateTime<Utc>>,
    /// Remote entries no manifest declares (added behind our back), sorted.
    pub drift: Vec<String>,
    /// Differences `ObserveOnly` leaves in place: entries to add and to remove.
    pub missing: Vec<String>,
    pub unwanted: Vec<String>,
}

impl DesiredList {
    /// The values that should be in the list at `now`, in declaration order.
    pub fn active_values(&self, now: DateTime<Utc>) -> Vec<String> {
        self.entries
            .iter()
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| entry.value.clone())
            .collect()
    }

    /// Field problems, with the paths the CRD uses.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        if let Location::Site(site) = &self.location {
            check_site_name(&mut problems, "site", site);
        }
        if self.name.trim().is_empty() {
            problems.push("name", "must not be empty");
        } else if self.name.chars().count() > MAX_NAME_LENGTH {
            problems.push(
                "name",
                format!("must be at most {MAX_NAME_LENGTH} characters"),
            );
        }
        if self.description.chars().count() > MAX_DESCRIPTION_LENGTH {
            problems.push(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LENGTH} characters"),
            );
        }
        let mut seen = BTreeSet::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let field = format!("entries[{index}].value");
            if let Err(message) = self.list_type.check_value(&entry.value) {
                problems.push(field, format!("{:?} {message}", entry.value));
            } else if !seen.insert(entry.value.as_str()) {
                problems.push(field, format!("{:?} is listed twice", entry.value));
            }
        }
        problems.into_result()
    }

    /// Counts, next expiry and the differences with the remote list (none when it is absent).
    pub fn report(&self, remote: Option<&ObservedList>, now: DateTime<Utc>) -> ListReport {
        let expired = self.entries.iter().filter(|e| e.is_expired(now)).count();
        let next_expiry = self
            .entries
            .iter()
            .filter_map(|entry| entry.expires)
            .filter(|expires| *expires > now)
            .min();
        let mut report = ListReport {
            active: self.entries.len() - expired,
            expired,
            next_expiry,
            ..ListReport::default()
        };
        if let Some(remote) = remote {
            let declared: BTreeSet<&str> = self.entries.iter().map(|e| e.value.as_str()).collect();
            let (missing, unwanted) = self.difference(remote, now);
            report.drift = remote
                .entries
                .iter()
                .filter(|value| !declared.contains(value.as_str()))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            report.missing = missing;
            report.unwanted = unwanted;
        }
        report
    }

    /// Entries to add (active, not remote) and to remove (remote, not active).
    fn difference(&self, remote: &ObservedList, now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
        let active = self.active_values(now);
        let wanted: BTreeSet<&str> = active.iter().map(String::as_str).collect();
        let present: BTreeSet<&str> = remote.entries.iter().map(String::as_str).collect();
        let additions = active
            .iter()
            .filter(|value| !present.contains(value.as_str()))
            .cloned()
            .collect();
        let deletions = remote
            .entries
            .iter()
            .filter(|value| !wanted.contains(value.as_str()))
            .cloned()
            .collect();
        (additions, deletions)
    }
}

/// The remote list a declaration manages: the recorded id, else the one of the same name.
pub fn find_list<'a>(list: &DesiredList, listed: &'a [ObservedList]) -> Option<&'a ObservedList> {
    list.remote_id
        .as_ref()
        .and_then(|id| listed.iter().find(|remote| &remote.id == id))
        .or_else(|| listed.iter().find(|remote| remote.name == list.name))
}

/// The change that makes `remote` match `list` at `now`; `None` when in sync or when the list
/// is only observed. A remote list of another type is a problem, not a change: the API cannot
/// change a list's type, and deleting it could unprotect a site.
pub fn plan_list(
    list: &DesiredList,
    remote: Option<&ObservedList>,
    now: DateTime<Utc>,
) -> Result<Option<Change>, Problems> {
    let change = list_difference(list, remote, now)?;
    Ok(change.filter(|_| list.management == ManagementPolicy::Full))
}

/// What [`plan_list`] would change were the list managed in full, whatever its policy: for an
/// ObserveOnly list, the differences reported and never applied.
pub fn list_difference(
    list: &DesiredList,
    remote: Option<&ObservedList>,
    now: DateTime<Utc>,
) -> Result<Option<Change>, Problems> {
    if let Some(remote) = remote
        && remote.list_type != list.list_type.as_str()
    {
        let mut problems = Problems::default();
        problems.push(
            "type",
            format!(
                "the remote list {} is of type {}; the API cannot change a list's type",
                remote.id, remote.list_type
            ),
        );
        return Err(problems);
    }
    let op = match remote {
        None => Op::Create(ListWrite {
            name: list.name.clone(),
            list_type: list.list_type,
            description: Some(list.description.clone()),
            additions: list.active_values(now),
            deletions: Vec::new(),
        }),
        Some(remote) => {
            let (additions, deletions) = list.difference(remote, now);
            let mut diffs = Vec::new();
            let description = (remote.description != list.description).then(|| {
                diffs.push(FieldDiff {
                    field: "description",
                    before: Shown::json(&remote.description),
                    after: Shown::json(&list.description),
                });
                list.description.clone()
            });
            if !additions.is_empty() {
                diffs.push(FieldDiff {
                    field: "entries added",
                    before: Shown::Absent,
                    after: Shown::json(&additions),
                });
            }
            if !deletions.is_empty() {
                diffs.push(FieldDiff {
                    field: "entries removed",
                    before: Shown::json(&deletions),
                    after: Shown::Absent,
                });
            }
            if diffs.is_empty() {
                return Ok(None);
            }
            Op::Update {
                id: remote.id.clone(),
                diffs,
                desired: ListWrite {
                    name: list.name.clone(),
                    list_type: list.list_type,
                    description,
                    additions,
                    deletions,
                },
            }
        }
    };
    Ok(Some(Change::List(ListChange {
        address: list.address.clone(),
        location: list.location.clone(),
        name: list.name.clone(),
        op,
    })))
}

/// Deleting a list whose declaration is gone (deletion policy `Delete`).
pub fn plan_list_removal(list: &DesiredList, remote_id: &str) -> Change {
    Change::List(ListChange {
        address: list.address.clone(),
        location: list.location.clone(),
        name: list.name.clone(),
        op: Op::Delete {
            id: remote_id.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::change::Verb;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, hour, 0, 0)
            .single()
            .expect("valid time")
    }

    fn entry(value: &str, expires: Option<u32>) -> DesiredEntry {
        DesiredEntry {
            value: value.into(),
            expires: expires.map(at),
            comment: String::new(),
        }
    }

    fn declared(entries: Vec<DesiredEntry>) -> DesiredList {
        DesiredList {
            address: Address::new("SigSciList", Some("soc"), "block"),
            location: Location::Site("site-1".into()),
            name: "block".into(),
            list_type: ListType::Ip,
            description: "incident".into(),
            entries,
            management: ManagementPolicy::Full,
            remote_id: None,
        }
    }

    fn remote(entries: &[&str]) -> ObservedList {
        ObservedList {
            id: "site.block".into(),
            name: "block".into(),
            list_type: "ip".into(),
            description: "incident".into(),
            entries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn write(change: Option<Change>) -> (Verb, Vec<String>, Vec<String>) {
        match change {
            Some(Change::List(ListChange { op, .. })) => match op {
                Op::Create(w) => (Verb::Create, w.additions, w.deletions),
                Op::Update { desired, .. } => (Verb::Update, desired.additions, desired.deletions),
                Op::Delete { .. } => (Verb::Delete, vec![], vec![]),
            },
            other => panic!("expected a list change, got {other:?}"),
        }
    }

    #[test]
    fn table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = vec![
            (
                "absent: created with active entries only",
                declared(vec![entry("10.0.0.1", None), entry("10.0.0.2", Some(1))]),
                None,
                Some((Verb::Create, s(&["10.0.0.1"]), s(&[]))),
            ),
            (
                "in sync",
                declared(vec![entry("10.0.0.1", Some(9))]),
                Some(remote(&["10.0.0.1"])),
                None,
            ),
            (
                "expired entry removed, new one added, others untouched",
                declared(vec![
                    entry("10.0.0.1", None),
                    entry("10.0.0.2", Some(3)),
                    entry("10.0.0.3", Some(9)),
                ]),
                Some(remote(&["10.0.0.1", "10.0.0.2"])),
                Some((Verb::Update, s(&["10.0.0.3"]), s(&["10.0.0.2"]))),
            ),
            (
                "drift removed under Full",
                declared(vec![entry("10.0.0.1", None)]),
                Some(remote(&["10.0.0.1", "192.0.2.66"])),
                Some((Verb::Update, s(&[]), s(&["192.0.2.66"]))),
            ),
        ];
        for (name, list, observed, expected) in cases {
            let change = plan_list(&list, observed.as_ref(), at(4)).expect(name);
            match expected {
                None => assert_eq!(change, None, "{name}"),
                Some(expected) => assert_eq!(write(change), expected, "{name}"),
            }
        }
    }

    #[test]
    fn observe_only_never_writes_but_reports() {
        let mut list = declared(vec![entry("10.0.0.1", None), entry("10.0.0.2", Some(3))]);
        list.management = ManagementPolicy::ObserveOnly;
        let observed = remote(&["10.0.0.2", "192.0.2.66"]);
        assert_eq!(plan_list(&list, Some(&observed), at(4)), Ok(None));
        assert_eq!(plan_list(&list, None, at(4)), Ok(None));
        let report = list.report(Some(&observed), at(4));
        assert_eq!((report.active, report.expired), (1, 1));
        assert_eq!(report.drift, ["192.0.2.66"]);
        assert_eq!(report.missing, ["10.0.0.1"]);
        assert_eq!(report.unwanted, ["10.0.0.2", "192.0.2.66"]);
    }

    #[test]
    fn report_gives_next_expiry_ahead() {
        let list = declared(vec![
            entry("10.0.0.1", Some(2)),
            entry("10.0.0.2", Some(8)),
            entry("10.0.0.3", Some(6)),
            entry("10.0.0.4", None),
        ]);
        let report = list.report(None, at(4));
        assert_eq!((report.active, report.expired), (3, 1));
        assert_eq!(report.next_expiry, Some(at(6)));
        assert!(report.drift.is_empty());
    }

    #[test]
    fn type_change_is_refused() {
        let mut observed = remote(&[]);
        observed.list_type = "string".into();
        let err = plan_list(&declared(vec![]), Some(&observed), at(4)).expect_err("type");
        assert!(
            err.to_string().contains("cannot change a list's type"),
            "{err}"
        );
    }

    #[test]
    fn values_are_checked_per_type() {
        let mut list = declared(vec![
            entry("198.51.100.0/24", None),
            entry("2001:db8::/129", None),
            entry("198.51.100.0/24", None),
        ]);
        let text = list.validate().expect_err("two problems").to_string();
        assert!(
            text.contains(
                "entries[1].value: \"2001:db8::/129\" must be an IPv4/IPv6 address or CIDR range"
            ),
            "{text}"
        );
        assert!(
            text.contains("entries[2].value: \"198.51.100.0/24\" is listed twice"),
            "{text}"
        );
        list.list_type = ListType::Country;
        list.entries = vec![entry("DE", None), entry("XX", None), entry("de", None)];
        let text = list.validate().expect_err("country").to_string();
        assert!(!text.contains("entries[0]"), "{text}");
        assert!(text.contains("entries[1].value"), "{text}");
        assert!(text.contains("entries[2].value"), "{text}");
        assert!(is_ip_or_cidr("10.0.0.0/8") && !is_ip_or_cidr("10.0.0.0/+8"));
    }
}
