//! Corp, site, agent, alert and integration calls.

use std::collections::HashSet;

use reqwest::Method;

use crate::client::{Call, Client, ignore_body, json};
use crate::error::{Error, Result};
use crate::models::{
    Agent, Alert, AlertBody, Corp, DataList, Integration, IntegrationBody, IntegrationUpdate, Site,
};

impl Client {
    /// `GET /corps/{corp}`; also a cheap way to check credentials.
    pub async fn get_corp(&self) -> Result<Corp> {
        let call = Call::new(Method::GET, "/corps/{corp}", self.corp_url(&[])?);
        self.send(&call, json).await
    }

    pub async fn list_sites(&self) -> Result<Vec<Site>> {
        let call = Call::new(
            Method::GET,
            "/corps/{corp}/sites",
            self.corp_url(&["sites"])?,
        );
        self.send(&call, json).await.map(list)
    }

    pub async fn list_agents(&self, site: &str) -> Result<Vec<Agent>> {
        let url = self.corp_url(&["sites", site, "agents"])?;
        let call = Call::new(Method::GET, "/corps/{corp}/sites/{site}/agents", url);
        self.send(&call, json).await.map(list)
    }

    pub async fn list_alerts(&self, site: &str) -> Result<Vec<Alert>> {
        let url = self.corp_url(&["sites", site, "alerts"])?;
        let call = Call::new(Method::GET, "/corps/{corp}/sites/{site}/alerts", url);
        self.send(&call, json).await.map(list)
    }

    pub async fn get_alert(&self, site: &str, id: &str) -> Result<Alert> {
        let url = self.corp_url(&["sites", site, "alerts", id])?;
        let call = Call::new(Method::GET, "/corps/{corp}/sites/{site}/alerts/{id}", url);
        self.send(&call, json).await
    }

    pub async fn create_alert(&self, site: &str, body: &AlertBody) -> Result<Alert> {
        let url = self.corp_url(&["sites", site, "alerts"])?;
        let call = Call::new(Method::POST, "/corps/{corp}/sites/{site}/alerts", url).json(body)?;
        self.send(&call, json).await
    }

    pub async fn update_alert(&self, site: &str, id: &str, body: &AlertBody) -> Result<Alert> {
        let url = self.corp_url(&["sites", site, "alerts", id])?;
        let call =
            Call::new(Method::PATCH, "/corps/{corp}/sites/{site}/alerts/{id}", url).json(body)?;
        self.send(&call, json).await
    }

    pub async fn delete_alert(&self, site: &str, id: &str) -> Result<()> {
        let url = self.corp_url(&["sites", site, "alerts", id])?;
        let call = Call::new(
            Method::DELETE,
            "/corps/{corp}/sites/{site}/alerts/{id}",
            url,
        );
        self.send(&call, ignore_body).await
    }

    pub async fn list_site_integrations(&self, site: &str) -> Result<Vec<Integration>> {
        let url = self.corp_url(&["sites", site, "integrations"])?;
        let call = Call::new(Method::GET, "/corps/{corp}/sites/{site}/integrations", url);
        self.send(&call, json).await.map(list)
    }

    pub async fn get_site_integration(&self, site: &str, id: &str) -> Result<Integration> {
        let url = self.corp_url(&["sites", site, "integrations", id])?;
        let call = Call::new(
            Method::GET,
            "/corps/{corp}/sites/{site}/integrations/{id}",
            url,
        );
        self.send(&call, json).await
    }

    /// The API answers this POST with the site's whole integration list. The created item is
    /// the one whose id was not listed before the POST and whose type and url match the body;
    /// if that is not exactly one item (e.g. a concurrent identical create) this fails with
    /// `BadResponse` rather than guess. [`Self::create_site_integration_among`] saves the
    /// listing when the caller holds one already.
    pub async fn create_site_integration(
        &self,
        site: &str,
        body: &IntegrationBody,
    ) -> Result<Integration> {
        let before: HashSet<String> = self
            .list_site_integrations(site)
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        self.create_site_integration_among(site, body, &before)
            .await
    }

    /// Creates a site integration, told apart from `existing` (the ids of a listing made before
    /// this call). A matching integration someone else made since that listing makes the reply
    /// ambiguous: `BadResponse` again.
    pub async fn create_site_integration_among(
        &self,
        site: &str,
        body: &IntegrationBody,
        existing: &HashSet<String>,
    ) -> Result<Integration> {
        let url = self.corp_url(&["sites", site, "integrations"])?;
        let call =
            Call::new(Method::POST, "/corps/{corp}/sites/{site}/integrations", url).json(body)?;
        let after: DataList<Integration> = self.send(&call, json).await?;
        identify_created(existing, after.data, body)
    }

    pub async fn update_site_integration(
        &self,
        site: &str,
        id: &str,
        body: &IntegrationUpdate,
    ) -> Result<()> {
        let url = self.corp_url(&["sites", site, "integrations", id])?;
        let call = Call::new(
            Method::PATCH,
            "/corps/{corp}/sites/{site}/integrations/{id}",
            url,
        )
        .json(body)?;
        self.send(&call, ignore_body).await
    }

    pub async fn delete_site_integration(&self, site: &str, id: &str) -> Result<()> {
        let url = self.corp_url(&["sites", site, "integrations", id])?;
        let call = Call::new(
            Method::DELETE,
            "/corps/{corp}/sites/{site}/integrations/{id}",
            url,
        );
        self.send(&call, ignore_body).await
    }

    pub async fn list_corp_integrations(&self) -> Result<Vec<Integration>> {
        let url = self.corp_url(&["integrations"])?;
        let call = Call::new(Method::GET, "/corps/{corp}/integrations", url);
        self.send(&call, json).await.map(list)
    }

    pub async fn get_corp_integration(&self, id: &str) -> Result<Integration> {
        let url = self.corp_url(&["integrations", id])?;
        let call = Call::new(Method::GET, "/corps/{corp}/integrations/{id}", url);
        self.send(&call, json).await
    }

    /// Corp POST returns the created integration itself.
    pub async fn create_corp_integration(&self, body: &IntegrationBody) -> Result<Integration> {
        let url = self.corp_url(&["integrations"])?;
        let call = Call::new(Method::POST, "/corps/{corp}/integrations", url).json(body)?;
        self.send(&call, json).await
    }

    pub async fn update_corp_integration(&self, id: &str, body: &IntegrationUpdate) -> Result<()> {
        let url = self.corp_url(&["integrations", id])?;
        let call = Call::new(Method::PATCH, "/corps/{corp}/integrations/{id}", url).json(body)?;
        self.send(&call, ignore_body).await
    }

    pub async fn delete_corp_integration(&self, id: &str) -> Result<()> {
        let url = self.corp_url(&["integrations", id])?;
        let call = Call::new(Method::DELETE, "/corps/{corp}/integrations/{id}", url);
        self.send(&call, ignore_body).await
    }
}

fn list<T>(envelope: DataList<T>) -> Vec<T> {
    envelope.data
}

/// Picks the integration a POST created out of the list it returned.
fn identify_created(
    before: &HashSet<String>,
    after: Vec<Integration>,
    body: &IntegrationBody,
) -> Result<Integration> {
    let mut created: Vec<Integration> = after
        .into_iter()
        .filter(|i| {
            !before.contains(&i.id)
                && i.integration_type == body.integration_type
                && i.url == body.url
        })
        .collect();
    if created.len() > 1 {
        return Err(Error::BadResponse {
            status: 200,
            snippet: format!(
                "POST reply lists {} new matching {} integrations; cannot tell which is ours",
                created.len(),
                body.integration_type
            ),
        });
    }
    created.pop().ok_or_else(|| Error::BadResponse {
        status: 200,
        snippet: format!(
            "POST reply lists no new {} integration with the requested url",
            body.integration_type
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(id: &str, kind: &str, url: &str) -> Integration {
        Integration {
            id: id.into(),
            integration_type: kind.into(),
            url: url.into(),
            ..Integration::default()
        }
    }

    fn body(kind: &str, url: &str) -> IntegrationBody {
        IntegrationBody {
            integration_type: kind.into(),
            url: url.into(),
            events: vec!["flag".into()],
            fields: None,
        }
    }

    #[test]
    fn created_integration_is_found_by_new_id_type_and_url_not_position() {
        let before: HashSet<String> = ["a".to_string()].into();
        // The new item is deliberately not last (another writer's item follows it).
        let after = vec![
            integration("a", "slack", "https://hooks/x"),
            integration("b", "slack", "https://hooks/x"),
            integration("c", "generic", "https://other"),
        ];
        let got =
            identify_created(&before, after, &body("slack", "https://hooks/x")).expect("found");
        assert_eq!(got.id, "b");
    }

    #[test]
    fn ambiguous_or_missing_creations_are_errors() {
        let before: HashSet<String> = HashSet::new();
        let twins = vec![
            integration("a", "slack", "https://hooks/x"),
            integration("b", "slack", "https://hooks/x"),
        ];
        let err = identify_created(&before, twins, &body("slack", "https://hooks/x"))
            .expect_err("ambiguous");
        assert!(err.to_string().contains("cannot tell"), "{err}");
        let other = vec![integration("a", "generic", "https://hooks/x")];
        let err =
            identify_created(&before, other, &body("slack", "https://hooks/x")).expect_err("none");
        assert!(err.to_string().contains("no new slack"), "{err}");
    }
}
