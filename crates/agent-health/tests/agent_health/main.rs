//! End to end: the simulator drives the fleet, moto holds state and secrets, local receivers stand in
//! for Slack, PagerDuty, Opsgenie and a webhook, and acknowledgement links are followed over HTTP.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use agent_health::environment::{Deps, Env};
use agent_health::{
    AckAction, AckError, AckMethod, AckRequest, CheckKind, ConditionKey, Evaluator, StateStore,
    UpdateError, acknowledge, webhook,
};
use chrono::Utc;
use hmac::{Hmac, Mac};
use kit_storage::SecretsManager;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;

fn outage_key() -> ConditionKey {
    ConditionKey::new("site-1", CheckKind::NoAgentsOnline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_notifies_once_throttles_repeats_and_resolves_once() {
    let h = Harness::start("").await;
    let healthy = h.run().await;
    assert_eq!(
        (
            healthy.sites_total,
            healthy.sites_evaluated,
            healthy.conditions_firing
        ),
        (3, 3, 0)
    );
    assert_eq!(h.all_counts(), [0, 0, 0, 0]);

    h.set_agents("site-1", json!({"online": 0})).await;
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!(
        (
            report.conditions_firing,
            report.notifications_sent,
            report.notifications_failed
        ),
        (1, 4, 0),
        "{report:?}"
    );
    assert_eq!(h.all_counts(), [1, 1, 1, 1]);
    let trigger = &h.pagerduty_events()[0];
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["dedup_key"],
        "sigsci-kit/testcorp/site-1/no_agents_online"
    );
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(
        trigger["payload"]["summary"],
        "[FIRING] testcorp/site-1 · No agents online: 0 of 3 agents online"
    );
    let slack = &h.slack_messages()[0];
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "🔴 1 agent health problem in testcorp"
    );
    assert_eq!(ack_buttons(slack).len(), 1);
    assert!(
        h.pagerduty
            .requests()
            .iter()
            .chain(&h.slack.requests())
            .all(|r| r.method == "POST")
    );
    let opsgenie = &h.opsgenie.requests()[0];
    assert_eq!(opsgenie.path, "/v2/alerts");
    assert_eq!(opsgenie.headers["authorization"], "GenieKey genie-key");

    // Still down for 25 more minutes: inside the 30 min throttle, nobody hears again.
    for _ in 0..5 {
        h.advance_minutes(5);
        let report = h.run().await;
        assert_eq!(
            (report.notifications_sent, report.notifications_throttled),
            (0, 4)
        );
    }
    assert_eq!(h.all_counts(), [1, 1, 1, 1]);
    // Past the throttle period: exactly one reminder per channel.
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [2, 2, 2, 2]);
    assert!(
        h.slack_messages()[1]["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("STILL FIRING")
    );
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [2, 2, 2, 2]);

    // Recovery: one resolve per channel, then silence.
    h.set_agents("site-1", json!({"online": 3})).await;
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [3, 3, 3, 3]);
    let resolve = &h.pagerduty_events()[2];
    assert_eq!(
        (
            resolve["event_action"].as_str(),
            resolve["dedup_key"].as_str()
        ),
        (Some("resolve"), trigger["dedup_key"].as_str())
    );
    let close = &h.opsgenie.requests()[2];
    assert_eq!(
        close.path,
        "/v2/alerts/sigsci-kit%2Ftestcorp%2Fsite-1%2Fno_agents_online/close"
    );
    assert_eq!(close.query.as_deref(), Some("identifierType=alias"));
    assert_eq!(
        h.slack_messages()[2]["blocks"][0]["text"]["text"],
        "✅ 1 agent health problem resolved in testcorp"
    );
    assert_eq!(
        h.webhook.requests()[2].json()["notifications"][0]["status"],
        "resolved"
    );
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [3, 3, 3, 3]);
    let state = h.state().await;
    assert!(state.conditions.is_empty(), "{:#?}", state.conditions);
    assert!(state.heartbeat.unwrap().finished_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_failing_sites_are_grouped_into_one_message_per_channel() {
    let h = Harness::start("").await;
    for site in ["site-1", "site-2", "site-3"] {
        h.set_agents(site, json!({"online": 0})).await;
    }
    let report = h.run().await;
    assert_eq!(report.conditions_firing, 3);
    // Slack and the webhook get one message listing all three; PagerDuty and Opsgenie one event per dedup key.
    assert_eq!(h.all_counts(), [1, 3, 3, 1]);
    assert_eq!(ack_buttons(&h.slack_messages()[0]).len(), 3);
    assert_eq!(
        h.webhook.requests()[0].json()["notifications"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let keys: std::collections::BTreeSet<String> = h
        .pagerduty_events()
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_link_silences_until_recovery_and_a_recurrence_fires_again() {
    let h = Harness::start("").await;
    h.set_agents("site-1", json!({"online": 0})).await;
    h.run().await;
    let link = ack_buttons(&h.slack_messages()[0]).remove(0);
    assert!(link.starts_with(&format!("{}/ack?", h.ack_url)), "{link}");

    // GET shows the confirmation page and changes nothing.
    let before = h.raw_state().await;
    let page = h.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"ack\">")
            && html.contains("<button type=\"submit\">Acknowledge</button>")
    );
    assert_eq!(h.raw_state().await, before);

    // POST the form (as the browser would): acknowledged and recorded.
    let mut form = query_of(&link);
    form.insert("by".into(), "Ann On-Call".into());
    let done = h.post_ack(&form).await;
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .unwrap()
            .contains("Acknowledged by Ann On-Call (link from slack)")
    );
    let state = h.state().await;
    let ack = state.conditions[&outage_key()]
        .acks
        .whole
        .clone()
        .expect("whole-check ack");
    assert_eq!(ack.how, AckMethod::Link);
    let event = state.ack_log.last().unwrap();
    assert_eq!(
        (event.action, event.via.as_deref()),
        (AckAction::Ack, Some("slack"))
    );
    // The incidents are acknowledged where they live, before the page answered.
    assert_eq!(h.all_counts(), [1, 2, 2, 1]);
    let acknowledge = &h.pagerduty_events()[1];
    assert_eq!(
        (
            acknowledge["event_action"].as_str(),
            acknowledge["dedup_key"].as_str(),
            acknowledge["routing_key"].as_str()
        ),
        (
            Some("acknowledge"),
            Some("sigsci-kit/testcorp/site-1/no_agents_online"),
            Some(ROUTING_KEY)
        )
    );
    let opsgenie = &h.opsgenie.requests()[1];
    assert_eq!(
        (opsgenie.path.as_str(), opsgenie.query.as_deref()),
        (
            "/v2/alerts/sigsci-kit%2Ftestcorp%2Fsite-1%2Fno_agents_online/acknowledge",
            Some("identifierType=alias")
        )
    );
    assert_eq!(opsgenie.json()["user"], "Ann On-Call (link from slack)");
    assert_eq!(opsgenie.headers["authorization"], "GenieKey genie-key");
    let incident = state.conditions[&outage_key()].channels["pagerduty"]
        .incident
        .clone()
        .expect("the PagerDuty incident's acknowledgement is recorded");
    assert!(incident.done_at.is_some(), "{incident:?}");

    // Past the throttle: only the webhook (ack_enabled: false) keeps firing; nothing is owed.
    h.advance_minutes(35);
    let report = h.run().await;
    assert_eq!(report.notifications_acknowledged, 3);
    assert_eq!(report.incidents_updated, 0);
    assert_eq!(h.all_counts(), [1, 2, 2, 2]);

    // Recovery resolves everyone who was told and ends the acknowledgement.
    h.set_agents("site-1", json!({"online": 3})).await;
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [2, 3, 3, 3]);
    assert_eq!(
        h.state().await.ack_log.last().unwrap().action,
        AckAction::Cleared
    );

    // A recurrence is a new episode: everyone hears again, and the old link cannot silence it.
    h.set_agents("site-1", json!({"online": 0})).await;
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [3, 4, 4, 4]);
    let replay = h.post_ack(&form).await;
    // The episode it was for is over; the new one came with a new link.
    assert_eq!(replay.status(), 410);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("has recovered since the link was sent")
    );
    assert!(h.state().await.conditions[&outage_key()].acks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_action_acknowledges_a_sites_checks_for_a_while_and_can_be_undone() {
    let h = Harness::start(
        "checks:\n  low_traffic: {min_rps: 20}\n  outdated_agents: {versions_behind: 1}\n",
    )
    .await;
    let low_traffic = ConditionKey::new("site-2", CheckKind::LowTraffic);
    let outdated = ConditionKey::new("site-2", CheckKind::OutdatedAgents);
    h.set_agents("site-2", json!({"rps": 5.0, "versions_behind": 3}))
        .await;
    let report = h.run().await;
    assert_eq!(report.conditions_firing, 2, "{report:?}");
    let link = ack_buttons(&h.slack_messages()[0])
        .into_iter()
        .find(|url| url.contains("check=site-2%2Flow_traffic"))
        .expect("a link for site-2/low_traffic");

    // The page names what it silences, when the link expires, the durations and the site-wide choice,
    // and remembers the name typed last time.
    let page = h
        .http
        .get(&link)
        .header("cookie", "other=1; sigsci_kit_ack_by=Bea%20B")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for wanted in [
        "<dt>Silences</dt><dd>slack, pagerduty, opsgenie</dd>",
        "<dt>Incidents</dt><dd>acknowledged in pagerduty, opsgenie as well</dd>",
        "<dt>Link valid until</dt><dd><time datetime=",
        "value=\"Bea B\"",
        " required ",
        "value=\"recovery\" checked",
        "value=\"1h\"",
        "value=\"4h\"",
        "All 2 firing checks of site-2: Low traffic, Outdated agents",
    ] {
        assert!(html.contains(wanted), "{wanted} in {html}");
    }

    // No name, no acknowledgement.
    let before = h.raw_state().await;
    let mut form = query_of(&link);
    form.insert("by".into(), "  ".into());
    let nameless = h.post_ack(&form).await;
    assert_eq!(nameless.status(), 422);
    assert!(nameless.text().await.unwrap().contains("Enter your name"));
    assert_eq!(h.raw_state().await, before);

    // Both checks for 4 hours, while PagerDuty is down: Opsgenie is acknowledged at once.
    h.pagerduty.fail_with(503);
    form.insert("by".into(), "Ann".into());
    form.insert("for".into(), "4h".into());
    form.insert("scope".into(), "site".into());
    let done = h.post_ack(&form).await;
    assert_eq!(done.status(), 200);
    let cookie = done.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("sigsci_kit_ack_by=Ann;") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let html = done.text().await.unwrap();
    assert!(
        html.contains("site-2: 2 checks (Low traffic, Outdated agents)"),
        "{html}"
    );
    assert!(html.contains("pagerduty: incident of site-2/low_traffic not acknowledged yet"));
    assert!(html.contains("opsgenie: incident of site-2/outdated_agents acknowledged."));
    assert!(html.contains("name=\"action\" value=\"undo\""));
    let state = h.state().await;
    for check in [&low_traffic, &outdated] {
        let ack = state.conditions[check].acks.whole.clone().unwrap();
        assert_eq!(
            ack.until,
            Some(agent_health::Clock::now(&h.clock) + chrono::TimeDelta::hours(4))
        );
        assert_eq!(ack.by, "Ann (link from slack)");
    }
    let acknowledged: Vec<String> = h
        .opsgenie
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/acknowledge"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(acknowledged.len(), 2, "{acknowledged:?}");
    let owed = state.conditions[&low_traffic].channels["pagerduty"]
        .incident
        .clone()
        .unwrap();
    assert_eq!((owed.done_at, owed.failures), (None, 1));

    // The next evaluation passes on what PagerDuty missed (its receiver recorded the refused two).
    let acknowledges = |h: &Harness| {
        h.pagerduty_events()
            .iter()
            .filter(|e| e["event_action"] == "acknowledge")
            .count()
    };
    assert_eq!(acknowledges(&h), 2);
    h.pagerduty.recover();
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!((report.incidents_updated, report.incidents_failed), (2, 0));
    assert_eq!(acknowledges(&h), 4);
    h.advance_minutes(5);
    assert_eq!(h.run().await.incidents_updated, 0);
    assert_eq!(acknowledges(&h), 4, "nothing is sent twice");

    // Undo: both acknowledgements go, Opsgenie is un-acknowledged, and the link works again.
    let pagerduty_before = h.pagerduty.count();
    let mut undo = query_of(&link);
    undo.insert("action".into(), "undo".into());
    undo.insert("by".into(), "Ann".into());
    let undone = h.post_ack(&undo).await;
    assert_eq!(undone.status(), 200);
    assert!(
        undone
            .text()
            .await
            .unwrap()
            .contains("Acknowledgement withdrawn")
    );
    let state = h.state().await;
    assert!(state.conditions[&low_traffic].acks.is_empty());
    assert!(state.conditions[&outdated].acks.is_empty());
    assert_eq!(
        h.opsgenie
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/unacknowledge"))
            .count(),
        2
    );
    assert_eq!(
        h.pagerduty.count(),
        pagerduty_before,
        "PagerDuty has no un-acknowledge"
    );
    let again = h.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("Acknowledge this alert?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_replayed_links_are_refused_and_change_nothing() {
    let h = Harness::start("").await;
    h.set_agents("site-1", json!({"online": 0})).await;
    h.run().await;
    let link = ack_buttons(&h.slack_messages()[0]).remove(0);
    let before = h.raw_state().await;

    // Tampered: widen the scope, flip to one-click, or forge the signature.
    for (name, value) in [
        ("check", "site-2/no_agents_online"),
        ("one_click", "true"),
        ("sig", "AAAA"),
        ("exp", "4102444800"),
    ] {
        let mut params = query_of(&link);
        params.insert(name.into(), value.into());
        let response = h
            .http
            .get(format!("{}/ack", h.ack_url))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{name}");
        let response = h.post_ack(&params).await;
        assert_eq!(response.status(), 403, "{name}");
    }
    assert_eq!(h.raw_state().await, before);

    // Used once, clicked again while the acknowledgement holds: "already acknowledged", not an error.
    let mut form = query_of(&link);
    form.insert("by".into(), "Ann".into());
    assert_eq!(h.post_ack(&form).await.status(), 200);
    let again = h.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("Already acknowledged"));
    let again = h.post_ack(&form).await;
    assert_eq!(again.status(), 200);

    // Someone un-acknowledges: the used link cannot be replayed to silence it again.
    h.store
        .update(CORP, |state| {
            agent_health::unacknowledge(
                state,
                &h.rules,
                &outage_key(),
                &[],
                "bob",
                AckMethod::Cli,
                Utc::now(),
            )
        })
        .await
        .unwrap();
    let before = h.raw_state().await;
    let replay = h.http.get(&link).send().await.unwrap();
    assert_eq!(replay.status(), 403);
    assert!(replay.text().await.unwrap().contains("already been used"));
    assert_eq!(h.raw_state().await, before);

    // Expired: a fresh link from a later message, opened after its 2 h lifetime.
    h.advance_minutes(31);
    h.run().await;
    let fresh = ack_buttons(h.slack_messages().last().unwrap()).remove(0);
    let before = h.raw_state().await;
    h.advance_minutes(121);
    let expired = h.http.get(&fresh).send().await.unwrap();
    assert_eq!(expired.status(), 403);
    let expired = expired.text().await.unwrap();
    assert!(expired.contains("expired"));
    assert!(
        expired.contains("The link was for <strong>testcorp/site-1 · No agents online</strong>"),
        "{expired}"
    );
    assert_eq!(h.raw_state().await, before);

    // An explicit acknowledgement of the channel that refuses them is an error, and changes nothing.
    let request = AckRequest {
        check: outage_key(),
        channels: vec!["hook".into()],
        until: None,
        by: "cli".into(),
        how: AckMethod::Cli,
        via: None,
        episode: None,
    };
    let refused = h
        .store
        .update(CORP, |state| {
            acknowledge(state, &h.rules, &request, Utc::now())
        })
        .await;
    assert!(
        matches!(
            refused,
            Err(UpdateError::Change(AckError::AckDisabled { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(h.raw_state().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_links_acknowledge_on_get() {
    let h = Harness::start("").await;
    // Same channels, but every link acknowledges on GET.
    let rules = agent_health::Rules {
        ack: agent_health::AckRules {
            one_click: true,
            ..h.rules.ack.clone()
        },
        ..h.rules.clone()
    };
    h.set_agents("site-1", json!({"online": 0})).await;
    h.evaluator.run(&rules, "one-click").await.unwrap();
    let link = ack_buttons(&h.slack_messages()[0]).remove(0);
    assert!(link.contains("one_click=true"));
    // The harness's service was built from rules without one_click; the link itself carries it, signed.
    let response = h.http.get(&link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Acknowledged"));
    let state = h.state().await;
    assert_eq!(
        state.conditions[&outage_key()]
            .acks
            .whole
            .as_ref()
            .map(|a| a.how),
        Some(AckMethod::LinkOneClick)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_evaluations_started_at_once_notify_once() {
    let h = Harness::start("").await;
    h.set_agents("site-1", json!({"online": 0})).await;
    // Both runs read the state document at the same version before either writes (on moto, for real).
    let racing = Arc::new(RacingStore::new(Arc::clone(&h.s3), 2));
    let store = StateStore::for_corp(racing.clone(), CORP);
    let evaluator = |store: &StateStore| Evaluator {
        store: store.clone(),
        ..h.evaluator.clone()
    };
    let (a, b) = (evaluator(&store), evaluator(&store));
    let (report_a, report_b) = tokio::join!(a.run(&h.rules, "race-a"), b.run(&h.rules, "race-b"));
    let (report_a, report_b) = (report_a.unwrap(), report_b.unwrap());
    assert!(
        racing.precondition_failures.load(Ordering::SeqCst) >= 1,
        "the compare-and-swap race did not happen"
    );
    assert_eq!(
        report_a.notifications_sent + report_b.notifications_sent,
        4,
        "{report_a:?} {report_b:?}"
    );
    assert_eq!(h.all_counts(), [1, 1, 1, 1]);
    let in_flight = report_a.notifications_in_flight + report_b.notifications_in_flight;
    assert!(
        in_flight == 4 || in_flight == 0,
        "the loser re-planned against the winner's claims: {in_flight}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_notification_on_the_next_run() {
    let h = Harness::start("").await;
    h.slack.fail_with(503);
    h.set_agents("site-1", json!({"online": 0})).await;
    let report = h.run().await;
    assert_eq!(
        (report.notifications_sent, report.notifications_failed),
        (3, 1)
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("channel slack: HTTP 503")),
        "{:?}",
        report.errors
    );
    // Secrets stay out of errors and state (the Slack webhook URL is one).
    let raw = String::from_utf8(h.raw_state().await.unwrap().to_vec()).unwrap();
    assert!(!raw.contains("/services/T000") && !raw.contains(ROUTING_KEY));
    let channel = h.state().await.conditions[&outage_key()].channels["slack"].clone();
    assert_eq!((channel.notified, channel.failures), (false, 1));

    h.slack.recover();
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!(
        (report.notifications_sent, report.notifications_failed),
        (1, 0)
    );
    assert_eq!(
        h.all_counts(),
        [2, 1, 1, 1],
        "one retry to Slack (the first attempt was refused), no repeats elsewhere"
    );
    assert!(
        h.slack_messages()[1]["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*FIRING*")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_that_failed_and_cleared_before_the_retry_still_reaches_the_channel() {
    let h = Harness::start("").await;
    h.pagerduty.fail_with(503);
    h.slack.fail_with(503);
    h.set_agents("site-1", json!({"online": 0})).await;
    let report = h.run().await;
    assert_eq!(
        (report.notifications_sent, report.notifications_failed),
        (2, 2)
    );

    h.pagerduty.recover();
    h.slack.recover();
    h.set_agents("site-1", json!({"online": 3})).await;
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!(
        (report.notifications_sent, report.notifications_failed),
        (4, 0),
        "{report:?}"
    );
    // PagerDuty gets the incident it missed and its resolution, in that order.
    let events = h.pagerduty_events();
    let actions: Vec<&str> = events
        .iter()
        .map(|event| event["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    assert_eq!(events[1]["dedup_key"], events[2]["dedup_key"]);
    let slack = h.slack_messages();
    let last = slack.last().unwrap()["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("*FIRED AND RESOLVED*"), "{last}");
    // Nothing is left waiting to be told.
    assert!(h.state().await.conditions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_traffic_fires_and_resolves_with_the_simulated_request_rate() {
    let h = Harness::start("checks:\n  low_traffic: {min_rps: 20}\n").await;
    let low_traffic = ConditionKey::new("site-2", CheckKind::LowTraffic);
    let healthy = h.run().await;
    assert_eq!((healthy.sites_evaluated, healthy.conditions_firing), (3, 0));

    // Agents online, but the site serves 5 requests/s among them.
    h.set_agents("site-2", json!({"rps": 5.0})).await;
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!(report.conditions_firing, 1, "{report:?}");
    let state = h.state().await;
    let condition = &state.conditions[&low_traffic];
    assert!(condition.firing);
    assert!(
        (condition.finding.value - 5.0).abs() < 0.5,
        "{:?}",
        condition.finding
    );
    let trigger = h.pagerduty_events().last().unwrap().clone();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["dedup_key"],
        "sigsci-kit/testcorp/site-2/low_traffic"
    );

    h.set_agents("site-2", json!({"rps": 50.0})).await;
    h.advance_minutes(5);
    let report = h.run().await;
    assert_eq!(report.conditions_firing, 0, "{report:?}");
    let resolve = h.pagerduty_events().last().unwrap().clone();
    assert_eq!(
        (
            resolve["event_action"].as_str(),
            resolve["dedup_key"].as_str()
        ),
        (
            Some("resolve"),
            Some("sigsci-kit/testcorp/site-2/low_traffic")
        )
    );
    assert!(h.state().await.conditions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_down_reports_evaluation_failed_and_never_a_false_healthy_or_outage() {
    let h = Harness::start("checks:\n  evaluation_failed: {consecutive_runs: 2}\n").await;
    h.set_agents("site-2", json!({"online": 0})).await;
    h.run().await;
    assert_eq!(h.all_counts(), [1, 1, 1, 1]);

    h.set_faults(json!({"server_error": 1.0})).await;
    h.advance_minutes(5);
    let report = h.run().await;
    assert!(
        report
            .corp_error
            .as_deref()
            .is_some_and(|e| e.contains("50")),
        "{report:?}"
    );
    assert_eq!(
        report.notifications_sent, 0,
        "one failed run is reported, not paged, and resolves nothing"
    );
    let state = h.state().await;
    let heartbeat = state.heartbeat.clone().unwrap();
    assert!(heartbeat.corp_error.is_some());
    assert!(
        state.conditions[&ConditionKey::new("site-2", CheckKind::NoAgentsOnline)].firing,
        "not reported healthy"
    );

    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [2, 2, 2, 2]);
    let event = &h.pagerduty_events()[1];
    assert_eq!(
        event["dedup_key"],
        "sigsci-kit/testcorp/*/evaluation_failed"
    );
    assert!(
        h.pagerduty_events()
            .iter()
            .all(|e| e["dedup_key"] != "sigsci-kit/testcorp/site-1/no_agents_online")
    );

    // The API is back, site-2 still down: evaluation_failed resolves, the outage is not paged twice.
    h.set_faults(json!({})).await;
    h.advance_minutes(5);
    h.run().await;
    assert_eq!(h.all_counts(), [3, 3, 3, 3]);
    assert_eq!(h.pagerduty_events()[2]["event_action"], "resolve");
    assert_eq!(
        h.pagerduty_events()[2]["dedup_key"],
        "sigsci-kit/testcorp/*/evaluation_failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_verifies_with_the_documented_algorithm() {
    let h = Harness::start("").await;
    h.set_agents("site-3", json!({"online": 0})).await;
    h.run().await;
    let request = &h.webhook.requests()[0];
    let timestamp = request.headers["x-sigsci-kit-timestamp"].to_str().unwrap();
    let signature = request.headers["x-sigsci-kit-signature"].to_str().unwrap();
    // Independently of the crate: hex(HMAC-SHA256(key, "{timestamp}.{body}")) with a "v1=" prefix.
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    assert_eq!(
        signature,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
    let now = h.clock_now();
    assert_eq!(
        webhook::verify(
            &SecretString::from(WEBHOOK_KEY),
            timestamp,
            signature,
            &request.body,
            now
        ),
        Ok(())
    );
    let body: Value = request.json();
    assert_eq!(body["corp"], CORP);
    assert_eq!(body["notifications"][0]["check"], "site-3/no_agents_online");
    assert!(
        body["notifications"][0]["ack_url"].is_null(),
        "the webhook refuses acks, so it carries no link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_evaluator_reads_rules_from_s3_and_refuses_bad_rules_before_evaluating() {
    let h = Harness::start("").await;
    let bucket = create_bucket("agent-health").await;
    create_secret(
        &format!("{}/api", h.secrets_prefix),
        r#"{"email": "sim@example.com", "token": "sim-token"}"#,
    )
    .await;
    let rules_yaml = "checks:\n  low_traffic: {min_rps: 1}\n";
    s3_client()
        .put_object()
        .bucket(&bucket)
        .key("config/rules.yaml")
        .body(rules_yaml.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let vars = |rules: (&str, &str)| -> HashMap<String, String> {
        [
            ("SIGSCI_CORP", CORP.to_string()),
            ("SIGSCI_API_URL", h.sim.base_url.clone()),
            (
                "SIGSCI_KIT_CREDENTIALS_SECRET",
                format!("{}/api", h.secrets_prefix),
            ),
            ("SIGSCI_KIT_STATE", format!("s3://{bucket}/lambda-state")),
            (rules.0, rules.1.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let deps = |vars: HashMap<String, String>| {
        let env = Env::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let secrets: Arc<dyn kit_storage::SecretSource> =
            Arc::new(SecretsManager::new(Some(&moto_url())));
        Deps::with(
            env,
            Some(secrets),
            Arc::new(h.clock.clone()),
            Some(moto_url()),
        )
    };

    let good = deps(vars((
        "SIGSCI_KIT_RULES_URL",
        &format!("s3://{bucket}/config/rules.yaml"),
    )));
    let report = good.evaluate().await.unwrap();
    assert_eq!(
        (
            report.sites_total,
            report.sites_evaluated,
            report.corp.as_str()
        ),
        (3, 3, CORP)
    );
    let state = good.store().await.unwrap().load(CORP).await.unwrap().0;
    assert_eq!(state.heartbeat.map(|hb| hb.run_id), Some(report.run_id));

    // A bad document: a clear error naming the key, and not one API call made.
    let calls_before = sim_calls(&h).await;
    let bad = deps(vars((
        "SIGSCI_KIT_RULES",
        "checks:\n  low_trafic: {min_rps: 1}\n",
    )));
    let error = bad.evaluate().await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("rules: checks.low_trafic: unknown field `low_trafic`"),
        "{error}"
    );
    assert!(!error.is_transient());
    assert_eq!(sim_calls(&h).await, calls_before);
}

/// Secrets Manager without its version call, as when the role may not `DescribeSecret`: only
/// the API's refusal can reveal a rotation.
struct VersionlessSecrets(SecretsManager);

#[async_trait::async_trait]
impl kit_storage::SecretSource for VersionlessSecrets {
    async fn json(&self, name: &str) -> kit_storage::Result<Value> {
        self.0.json(name).await
    }
}

async fn rotate_api_token(h: &Harness, api_secret: &str, token: &str) {
    h.http
        .put(format!("{}/__sim/credentials", h.sim.base_url))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    rotate_secret(
        api_secret,
        &json!({"email": "sim@example.com", "token": token}).to_string(),
    )
    .await;
}

/// The simulator's call log (`GET /__sim/log`).
async fn sim_log(h: &Harness) -> Value {
    h.http
        .get(format!("{}/__sim/log", h.sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn refused_credentials(h: &Harness) -> u64 {
    sim_log(h).await["refused_credentials"].as_u64().unwrap()
}

/// The deployed function's environment: credentials from `api_secret` (created here, holding the
/// simulator's token), state in a new bucket, and `rules` if given.
async fn rotation_env(h: &Harness, api_secret: &str, rules: Option<String>) -> Env {
    let bucket = create_bucket("agent-health").await;
    create_secret(
        api_secret,
        r#"{"email": "sim@example.com", "token": "sim-token"}"#,
    )
    .await;
    let mut vars: HashMap<&str, String> = [
        ("SIGSCI_CORP", CORP.to_string()),
        ("SIGSCI_API_URL", h.sim.base_url.clone()),
        ("SIGSCI_KIT_CREDENTIALS_SECRET", api_secret.to_string()),
        ("SIGSCI_KIT_STATE", format!("s3://{bucket}/lambda-state")),
    ]
    .into_iter()
    .collect();
    if let Some(rules) = rules {
        vars.insert("SIGSCI_KIT_RULES", rules);
    }
    Env::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_secret_version_is_read_before_the_api_refuses_the_old_token() {
    let h = Harness::start("").await;
    let api_secret = format!("{}/api", h.secrets_prefix);
    let env = rotation_env(&h, &api_secret, None).await;
    let deps = Deps::with(env, None, Arc::new(h.clock.clone()), Some(moto_url()));
    let first = deps.evaluate().await.unwrap();
    assert_eq!((first.sites_evaluated, first.corp_error), (3, None));

    rotate_api_token(&h, &api_secret, "rotated-token").await;
    let refused_before = refused_credentials(&h).await;
    let second = deps.evaluate().await.unwrap();
    assert_eq!(
        (second.sites_evaluated, second.corp_error.clone()),
        (3, None),
        "{second:?}"
    );
    assert_eq!(
        refused_credentials(&h).await,
        refused_before,
        "the old token was sent after the secret changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_rotated_signing_key_are_read_again_without_a_cold_start() {
    let h = Harness::start("").await;
    let api_secret = format!("{}/api", h.secrets_prefix);
    let ack_secret = format!("{}/ack", h.secrets_prefix);
    let rules =
        format!("ack: {{base_url: 'http://ack.invalid', secret: 'secretsmanager:{ack_secret}'}}\n");
    let env = rotation_env(&h, &api_secret, Some(rules)).await;
    let secrets: Arc<dyn kit_storage::SecretSource> =
        Arc::new(VersionlessSecrets(SecretsManager::new(Some(&moto_url()))));
    // One container serving both functions: the state of a warm Lambda.
    let deps = Deps::with(
        env,
        Some(secrets),
        Arc::new(h.clock.clone()),
        Some(moto_url()),
    );
    let ack_service = deps.ack_service().await.unwrap();
    let first = deps.evaluate().await.unwrap();
    assert_eq!((first.sites_evaluated, first.corp_error), (3, None));

    // The token is rotated: the API refuses the old one, the secret holds the new one.
    rotate_api_token(&h, &api_secret, "rotated-token").await;
    let refused_before = refused_credentials(&h).await;
    let second = deps.evaluate().await.unwrap();
    assert!(refused_credentials(&h).await > refused_before);
    assert_eq!(
        (second.sites_evaluated, second.corp_error.clone()),
        (3, None),
        "{second:?}"
    );
    let state = deps.store().await.unwrap().load(CORP).await.unwrap().0;
    assert_eq!(state.list_failures, 0, "no run counted as failed");
    assert!(state.conditions.is_empty(), "{:?}", state.conditions.keys());

    // The signing key is rotated: links signed with the new key verify, so do the ones already sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, agent_health::router(ack_service))
            .await
            .unwrap()
    });
    rotate_secret(&ack_secret, &json!({"key": "rotated-ack-key"}).to_string()).await;
    h.clock.advance(chrono::TimeDelta::minutes(1));
    let open = |key: &'static str| {
        let link = agent_health::AckLink {
            corp: CORP.to_string(),
            check: outage_key(),
            channels: Vec::new(),
            episode: "e1".to_string(),
            expires: h.clock_now() + chrono::TimeDelta::hours(1),
            nonce: agent_health::AckLink::new_nonce(),
            via: "slack".to_string(),
            one_click: false,
        }
        .url(&base, &SecretString::from(key));
        let http = h.http.clone();
        async move { http.get(link).send().await.unwrap().status().as_u16() }
    };
    // 410: the signature holds, and no such episode is firing.
    assert_eq!(open("rotated-ack-key").await, 410);
    assert_eq!(open(ACK_KEY).await, 410);
    assert_eq!(open("never-issued-key").await, 403);
}

async fn sim_calls(h: &Harness) -> u64 {
    sim_log(h).await["calls"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

impl Harness {
    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use agent_health::Clock;
        self.clock.now()
    }
}
