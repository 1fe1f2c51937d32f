//! Site and corp lists (IP, country, string, wildcard, signal) that request rules refer to.
//! Entries change through PATCH additions and deletions only: a full replacement could drop
//! entries another writer added between our read and our write.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client, ignore_body, json};
use crate::error::Result;
use crate::models::DataList;

/// Where a list lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListScope<'a> {
    Site(&'a str),
    Corp,
}

/// A list as the API returns it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleList {
    /// `site.NAME` or `corp.NAME` (lower-cased, dashed).
    pub id: String,
    pub name: String,
    /// `ip`, `country`, `string`, `wildcard` or `signal`.
    #[serde(rename = "type")]
    pub list_type: String,
    pub description: String,
    pub entries: Vec<String>,
    pub created_by: String,
    #[serde(deserialize_with = "crate::models::optional_time")]
    pub created: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "crate::models::optional_time")]
    pub updated: Option<DateTime<Utc>>,
}

/// Body of a create call.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ListBody {
    pub name: String,
    #[serde(rename = "type")]
    pub list_type: String,
    pub description: String,
    pub entries: Vec<String>,
}

/// Body of a PATCH: the description (when set) and the entries to add and to remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ListUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub entries: EntryChanges,
}

/// `{"additions": [...], "deletions": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EntryChanges {
    pub additions: Vec<String>,
    pub deletions: Vec<String>,
}

impl Client {
    pub async fn list_lists(&self, scope: ListScope<'_>) -> Result<Vec<RuleList>> {
        let call = match scope {
            ListScope::Site(site) => Call::new(
                Method::GET,
                "/corps/{corp}/sites/{site}/lists",
                self.corp_url(&["sites", site, "lists"])?,
            ),
            ListScope::Corp => Call::new(
                Method::GET,
                "/corps/{corp}/lists",
                self.corp_url(&["lists"])?,
            ),
        };
        let envelope: DataList<RuleList> = self.send(&call, json).await?;
        Ok(envelope.data)
    }

    pub async fn get_list(&self, scope: ListScope<'_>, id: &str) -> Result<RuleList> {
        let call = self.one_list(Method::GET, scope, id)?;
        self.send(&call, json).await
    }

    /// The API answers with the created list.
    pub async fn create_list(&self, scope: ListScope<'_>, body: &ListBody) -> Result<RuleList> {
        let call = match scope {
            ListScope::Site(site) => Call::new(
                Method::POST,
                "/corps/{corp}/sites/{site}/lists",
                self.corp_url(&["sites", site, "lists"])?,
            ),
            ListScope::Corp => Call::new(
                Method::POST,
                "/corps/{corp}/lists",
                self.corp_url(&["lists"])?,
            ),
        };
        self.send(&call.json(body)?, json).await
    }

    /// Adds and removes entries; entries nobody names are left alone.
    pub async fn update_list(
        &self,
        scope: ListScope<'_>,
        id: &str,
        update: &ListUpdate,
    ) -> Result<RuleList> {
        let call = self.one_list(Method::PATCH, scope, id)?.json(update)?;
        self.send(&call, json).await
    }

    pub async fn delete_list(&self, scope: ListScope<'_>, id: &str) -> Result<()> {
        let call = self.one_list(Method::DELETE, scope, id)?;
        self.send(&call, ignore_body).await
    }

    fn one_list(&self, method: Method, scope: ListScope<'_>, id: &str) -> Result<Call> {
        Ok(match scope {
            ListScope::Site(site) => Call::new(
                method,
                "/corps/{corp}/sites/{site}/lists/{id}",
                self.corp_url(&["sites", site, "lists", id])?,
            ),
            ListScope::Corp => Call::new(
                method,
                "/corps/{corp}/lists/{id}",
                self.corp_url(&["lists", id])?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_decodes_and_update_serializes_the_difference_form() {
        let list: RuleList = serde_json::from_str(
            r#"{"id":"site.block","name":"block","type":"ip","description":"d",
                "entries":["10.0.0.1"],"createdBy":"a@b.c","created":"2026-01-01T00:00:00Z",
                "updated":"","entryCount":1}"#,
        )
        .expect("list");
        assert_eq!(
            (list.id.as_str(), list.list_type.as_str()),
            ("site.block", "ip")
        );
        assert_eq!(list.updated, None);
        let update = ListUpdate {
            description: None,
            entries: EntryChanges {
                additions: vec!["10.0.0.2".into()],
                deletions: vec![],
            },
        };
        assert_eq!(
            serde_json::to_string(&update).expect("json"),
            r#"{"entries":{"additions":["10.0.0.2"],"deletions":[]}}"#
        );
    }
}
