//! Acknowledgement deeplinks: readable query parameters (corp, check, channels, episode, expiry, nonce,
//! the carrying channel, one_click) plus `sig`, an HMAC-SHA256 over all of them. Changing any parameter,
//! `one_click` included, invalidates the link; so does the expiry passing. The nonce makes each link
//! single-use (the state records used nonces until they expire).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::checks::ConditionKey;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &str = "sigsci-kit-ack-v1";

/// Path of the acknowledgement endpoint under `ack.base_url`.
pub const ACK_PATH: &str = "/ack";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckLink {
    pub corp: String,
    pub check: ConditionKey,
    /// Empty: the whole check.
    pub channels: Vec<String>,
    pub episode: String,
    pub expires: DateTime<Utc>,
    pub nonce: String,
    /// The channel whose message carries the link.
    pub via: String,
    pub one_click: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is incomplete or malformed: {0}")]
    Malformed(String),
    #[error("the link's signature does not match; it was changed or not issued here")]
    BadSignature,
    /// Verified, but past its expiry: the link itself still says which alert it was for.
    #[error("the link expired at {}", .0.expires)]
    Expired(Box<AckLink>),
}

impl AckLink {
    /// A fresh random nonce (128 bits, hex).
    pub fn new_nonce() -> String {
        hex::encode(rand::random::<[u8; 16]>())
    }

    fn canonical(&self) -> String {
        [
            DOMAIN,
            &self.corp,
            &self.check.to_string(),
            &self.channels.join(","),
            &self.episode,
            &self.expires.timestamp().to_string(),
            &self.nonce,
            &self.via,
            if self.one_click { "1" } else { "0" },
        ]
        .join("\n")
    }

    fn mac(&self, key: &SecretString) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(self.canonical().as_bytes());
        mac
    }

    /// The query parameters of the link, `sig` last.
    pub fn signed_params(&self, key: &SecretString) -> Vec<(&'static str, String)> {
        let sig = URL_SAFE_NO_PAD.encode(self.mac(key).finalize().into_bytes());
        let mut params = vec![
            ("corp", self.corp.clone()),
            ("check", self.check.to_string()),
            ("channels", self.channels.join(",")),
            ("episode", self.episode.clone()),
            ("exp", self.expires.timestamp().to_string()),
            ("nonce", self.nonce.clone()),
            ("via", self.via.clone()),
        ];
        if self.one_click {
            params.push(("one_click", "true".to_string()));
        }
        params.push(("sig", sig));
        params
    }

    pub fn url(&self, base_url: &str, key: &SecretString) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.signed_params(key))
            .finish();
        format!("{}{ACK_PATH}?{query}", base_url.trim_end_matches('/'))
    }

    /// Parses and verifies link parameters (from a query string or a confirmation form).
    /// The signature is checked before the expiry or anything else is believed.
    pub fn verify(
        params: &HashMap<String, String>,
        key: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<AckLink, LinkError> {
        let field = |name: &str| -> Result<String, LinkError> {
            let value = params
                .get(name)
                .ok_or_else(|| LinkError::Malformed(format!("missing {name}")))?;
            if value.contains('\n') || value.len() > 512 {
                return Err(LinkError::Malformed(format!("bad {name}")));
            }
            Ok(value.clone())
        };
        let sig = URL_SAFE_NO_PAD
            .decode(field("sig")?)
            .map_err(|_| LinkError::Malformed("bad sig".into()))?;
        let one_click = match params.get("one_click").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(LinkError::Malformed(
                    "one_click must be true or false".into(),
                ));
            }
        };
        let exp: i64 = field("exp")?
            .parse()
            .map_err(|_| LinkError::Malformed("bad exp".into()))?;
        let expires = DateTime::from_timestamp(exp, 0)
            .ok_or_else(|| LinkError::Malformed("bad exp".into()))?;
        let channels_text = field("channels")?;
        let channels: Vec<String> = match channels_text.as_str() {
            "" => Vec::new(),
            text => text.split(',').map(str::to_string).collect(),
        };
        let check: ConditionKey = field("check")?.parse().map_err(LinkError::Malformed)?;
        let link = AckLink {
            corp: field("corp")?,
            check,
            channels,
            episode: field("episode")?,
            expires,
            nonce: field("nonce")?,
            via: field("via")?,
            one_click,
        };
        link.mac(key)
            .verify_slice(&sig)
            .map_err(|_| LinkError::BadSignature)?;
        if now >= expires {
            return Err(LinkError::Expired(Box::new(link)));
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::checks::CheckKind;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn key() -> SecretString {
        SecretString::from("test-signing-key")
    }

    fn link() -> AckLink {
        AckLink {
            corp: "testcorp".into(),
            check: ConditionKey::new("www", CheckKind::NoAgentsOnline),
            channels: vec!["slack".into()],
            episode: "e1".into(),
            expires: t(60),
            nonce: "00ff".into(),
            via: "slack".into(),
            one_click: false,
        }
    }

    fn params_of(url: &str) -> HashMap<String, String> {
        let parsed = url::Url::parse(url).unwrap();
        parsed.query_pairs().into_owned().collect()
    }

    #[test]
    fn round_trips_through_a_url() {
        let url = link().url("https://ack.example.com/", &key());
        assert!(
            url.starts_with(
                "https://ack.example.com/ack?corp=testcorp&check=www%2Fno_agents_online&"
            ),
            "{url}"
        );
        assert_eq!(AckLink::verify(&params_of(&url), &key(), t(1)), Ok(link()));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let url = link().url("https://ack.example.com", &key());
        for (name, value) in [
            ("check", "www/low_traffic"),
            ("channels", ""),
            ("episode", "e2"),
            ("exp", "1900000000"),
            ("nonce", "00fe"),
            ("corp", "othercorp"),
            ("via", "mail"),
            ("one_click", "true"),
        ] {
            let mut params = params_of(&url);
            params.insert(name.to_string(), value.to_string());
            assert_eq!(
                AckLink::verify(&params, &key(), t(1)),
                Err(LinkError::BadSignature),
                "{name}"
            );
        }
        assert_eq!(
            AckLink::verify(&params_of(&url), &SecretString::from("other-key"), t(1)),
            Err(LinkError::BadSignature)
        );
        let mut params = params_of(&url);
        params.remove("sig");
        assert!(matches!(
            AckLink::verify(&params, &key(), t(1)),
            Err(LinkError::Malformed(_))
        ));
    }

    #[test]
    fn expired_links_are_refused() {
        let url = link().url("https://ack.example.com", &key());
        assert_eq!(
            AckLink::verify(&params_of(&url), &key(), t(60)),
            Err(LinkError::Expired(Box::new(link())))
        );
    }

    #[test]
    fn one_click_is_part_of_what_is_signed() {
        let one_click = AckLink {
            one_click: true,
            ..link()
        };
        let url = one_click.url("https://ack.example.com", &key());
        assert!(url.contains("one_click=true"));
        assert_eq!(
            AckLink::verify(&params_of(&url), &key(), t(1)),
            Ok(one_click)
        );
        let mut params = params_of(&url);
        params.remove("one_click");
        assert_eq!(
            AckLink::verify(&params, &key(), t(1)),
            Err(LinkError::BadSignature)
        );
    }
}
