//! Links for whoever handles an alert: a dashboard and a runbook, as URL templates with `{corp}`,
//! `{site}` and `{check}` (filled in URL-encoded), for every check or per check. They appear in
//! every message and on the acknowledgement page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RulesError;
use crate::checks::{CheckKind, ConditionKey};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkTemplates {
    pub dashboard: Option<String>,
    pub runbook: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkRules {
    pub dashboard: Option<String>,
    pub runbook: Option<String>,
    /// Per check, taking the place of the ones above.
    pub checks: BTreeMap<CheckKind, LinkTemplates>,
}

const PLACEHOLDERS: [&str; 3] = ["corp", "site", "check"];

impl LinkRules {
    /// The check's links as (label, URL), dashboard first.
    pub fn for_check(&self, corp: &str, check: &ConditionKey) -> Vec<(&'static str, String)> {
        let own = self.checks.get(&check.check);
        let pick = |own: Option<&Option<String>>, all: &Option<String>| {
            own.and_then(Option::as_ref).or(all.as_ref()).cloned()
        };
        [
            (
                "Dashboard",
                pick(own.map(|links| &links.dashboard), &self.dashboard),
            ),
            (
                "Runbook",
                pick(own.map(|links| &links.runbook), &self.runbook),
            ),
        ]
        .into_iter()
        .filter_map(|(label, template)| Some((label, fill(&template?, corp, check))))
        .collect()
    }

    pub(super) fn validate(&self) -> Result<(), RulesError> {
        let mut templates = vec![
            ("links.dashboard".to_string(), &self.dashboard),
            ("links.runbook".to_string(), &self.runbook),
        ];
        for (check, links) in &self.checks {
            templates.push((format!("links.checks.{check}.dashboard"), &links.dashboard));
            templates.push((format!("links.checks.{check}.runbook"), &links.runbook));
        }
        for (path, template) in templates {
            if let Some(template) = template {
                validate_template(template, &path)?;
            }
        }
        Ok(())
    }
}

fn fill(template: &str, corp: &str, check: &ConditionKey) -> String {
    let encode =
        |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    template
        .replace("{corp}", &encode(corp))
        .replace("{site}", &encode(&check.site))
        .replace("{check}", &encode(check.check.as_str()))
}

fn validate_template(template: &str, path: &str) -> Result<(), RulesError> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| RulesError::at(path, format!("{template:?} has a {{ without }}")))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(RulesError::at(
                path,
                format!(
                    "unknown placeholder {{{name}}} in {template:?}; use {{corp}}, {{site}} or {{check}}"
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    // Checked with the placeholders filled, as the URL people will open.
    let sample = fill(
        template,
        "corp",
        &ConditionKey::new("site", CheckKind::NoAgentsOnline),
    );
    let parsed: url::Url = sample
        .parse()
        .map_err(|e| RulesError::at(path, format!("{template:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RulesError::at(
            path,
            format!("{template:?} must be an http or https URL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    #[test]
    fn per_check_links_replace_the_general_ones_and_values_are_encoded() {
        let rules = Rules::parse(
            "links:\n  dashboard: 'https://grafana.example/d/waf?corp={corp}&site={site}'\n  \
             runbook: 'https://wiki.example/agent-health#{check}'\n  checks:\n    \
             low_traffic: {runbook: 'https://wiki.example/low-traffic/{site}'}\n",
            "t",
        )
        .unwrap();
        let www = |check| ConditionKey::new("www 2", check);
        assert_eq!(
            rules
                .links
                .for_check("c&o", &www(CheckKind::NoAgentsOnline)),
            vec![
                (
                    "Dashboard",
                    "https://grafana.example/d/waf?corp=c%26o&site=www+2".to_string()
                ),
                (
                    "Runbook",
                    "https://wiki.example/agent-health#no_agents_online".to_string()
                ),
            ]
        );
        assert_eq!(
            rules.links.for_check("c", &www(CheckKind::LowTraffic))[1].1,
            "https://wiki.example/low-traffic/www+2"
        );
        assert!(
            Rules::default()
                .links
                .for_check("c", &www(CheckKind::LowTraffic))
                .is_empty()
        );
    }

    #[test]
    fn bad_templates_are_refused_with_their_path() {
        for (text, path, problem) in [
            (
                "links: {runbook: 'https://w.example/{team}'}",
                "links.runbook",
                "unknown placeholder {team}",
            ),
            (
                "links: {dashboard: 'ftp://x.example/{site}'}",
                "links.dashboard",
                "http or https",
            ),
            (
                "links: {checks: {low_traffic: {dashboard: 'https://x/{site'}}}",
                "links.checks.low_traffic.dashboard",
                "without }",
            ),
            (
                "links: {checks: {no_such: {dashboard: 'https://x'}}}",
                "links.checks",
                "no_such",
            ),
            ("links: {wiki: 'https://x'}", "links", "wiki"),
        ] {
            let error = Rules::parse(text, "t").unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(path) && message.contains(problem),
                "{text}: {message}"
            );
        }
    }
}
