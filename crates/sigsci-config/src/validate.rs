//! Field-by-field validation that mirrors what the API (and the CRDs' CEL rules) reject.

use std::fmt;

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

/// Every problem found in one declaration; empty means valid.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", problem.field, problem.message)?;
        }
        Ok(())
    }
}

/// Site and corp short names: `[0-9a-z_.-]+`.
pub(crate) fn check_site_name(problems: &mut Problems, field: &str, value: &str) {
    if value.is_empty() {
        problems.push(field, "must not be empty");
    } else if !sigsci::is_short_name(value) {
        problems.push(
            field,
            format!("{value:?} must match [0-9a-z_.-]+ (a site short name)"),
        );
    }
}

/// An https URL with a host, the only kind of webhook the API calls.
pub fn is_https_url(value: &str) -> bool {
    value
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
}

/// One plain e-mail address: `local@domain.tld`, no spaces.
pub fn is_email_address(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !value.contains(char::is_whitespace)
        && domain
            .split_once('.')
            .is_some_and(|(name, tld)| !name.is_empty() && !tld.is_empty() && !tld.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls() {
        assert!(is_https_url("https://hooks.slack.com/services/T/B/x"));
        assert!(is_https_url("https://example.com"));
        assert!(!is_https_url("http://example.com/hook"));
        assert!(!is_https_url("https:///path"));
        assert!(!is_https_url("ops@example.com"));
    }

    #[test]
    fn email_addresses() {
        assert!(is_email_address("ops@example.com"));
        assert!(is_email_address("on-call+waf@mail.example.co.uk"));
        assert!(!is_email_address("ops@example"));
        assert!(!is_email_address("@example.com"));
        assert!(!is_email_address("ops @example.com"));
        assert!(!is_email_address("https://example.com"));
    }

    #[test]
    fn problems_display_joins_fields() {
        let mut problems = Problems::default();
        problems.push("url", "must be https");
        problems.push("site", "must not be empty");
        assert_eq!(
            problems.to_string(),
            "url: must be https; site: must not be empty"
        );
        assert!(Problems::default().into_result().is_ok());
    }
}
