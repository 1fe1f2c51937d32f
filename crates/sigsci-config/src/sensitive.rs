//! A secret value (webhook URL, API key) that can be compared but never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

#[derive(Clone)]
pub struct Sensitive(SecretString);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Sensitive {
        Sensitive(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl PartialEq for Sensitive {
    fn eq(&self, other: &Sensitive) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Sensitive {}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Sensitive::new("https://hooks.example.com/T000/B000/abc");
        assert_eq!(format!("{secret:?}"), "Sensitive([REDACTED])");
        assert_eq!(
            secret,
            Sensitive::new("https://hooks.example.com/T000/B000/abc")
        );
        assert_ne!(secret, Sensitive::new("https://hooks.example.com/other"));
    }
}
