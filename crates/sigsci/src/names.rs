//! Names the API fixes: the production base URL and the short names of corps and sites.

/// The production API's base URL, the default wherever one can be given.
pub const DEFAULT_API_URL: &str = "https://dashboard.signalsciences.net";

/// Corp and site short names, as a regular expression (the CRDs' CEL rules state the same one).
pub const SHORT_NAME_PATTERN: &str = "^[0-9a-z_.-]+$";

/// What a short name may hold, in words, for error messages.
pub const SHORT_NAME_CHARACTERS: &str = "lower-case letters, digits, '_', '.' and '-'";

/// Whether `value` is a corp or site short name ([`SHORT_NAME_PATTERN`]).
pub fn is_short_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        for good in ["site-1", "a", "corp_name.v2", "0"] {
            assert!(is_short_name(good), "{good}");
        }
        for bad in ["", "Site", "site 1", "site/1", "sité", "a:b"] {
            assert!(!is_short_name(bad), "{bad}");
        }
    }
}
