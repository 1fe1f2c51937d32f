//! Slack incoming webhook: one Block Kit message per run listing every condition for the channel,
//! each firing one with an Acknowledge link button.

use serde_json::{Value, json};

use super::{Notification, group_headline, truncate};

/// Slack allows 50 blocks; keep room for the header and the trailing context blocks.
const MAX_LISTED: usize = 45;

/// Slack mrkdwn needs only these three escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn item_block(index: usize, item: &Notification) -> Value {
    let mut text = format!(
        "{} *{}* · *{}* · {} ({})\n{}\n_{}_",
        item.status_icon(),
        item.status_label(),
        escape(&item.site_label()),
        item.check.check.title(),
        item.severity,
        escape(&truncate(&item.details(), 2500)),
        item.when(),
    );
    if let Some(url) = &item.ack_channel_url {
        text.push_str(&format!(
            "\n<{url}|Acknowledge in Slack only> (the other channels keep notifying)"
        ));
    }
    let links: Vec<String> = item
        .links
        .iter()
        .map(|link| format!("<{}|{}>", link.url, link.label))
        .collect();
    if !links.is_empty() {
        text.push_str(&format!("\n{}", links.join(" · ")));
    }
    let mut block = json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    if let Some(url) = &item.ack_url {
        block["accessory"] = json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Acknowledge"},
            "url": url,
            "action_id": format!("ack-{index}"),
        });
    }
    block
}

pub fn message(corp: &str, items: &[Notification]) -> Value {
    let headline = group_headline(corp, items);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&headline, 150)}}),
    ];
    blocks.extend(
        items
            .iter()
            .take(MAX_LISTED)
            .enumerate()
            .map(|(index, item)| item_block(index, item)),
    );
    if items.len() > MAX_LISTED {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("…and {} more; `sigsci-kit health status` lists them all", items.len() - MAX_LISTED)}]}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("sigsci-kit agent health · corp *{}*", escape(corp))}]}));
    // `text` is what notifications and screen readers show.
    let fallback: Vec<String> = items
        .iter()
        .take(MAX_LISTED)
        .map(Notification::headline)
        .collect();
    json!({"text": truncate(&format!("{headline}\n{}", fallback.join("\n")), 3000), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::fixtures::{firing, resolved};

    #[test]
    fn lists_every_site_with_an_ack_button_for_firing_ones() {
        let message = message(
            "testcorp",
            &[firing("www"), firing("api"), resolved("shop")],
        );
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 5);
        assert_eq!(
            blocks[0]["text"]["text"],
            "🔴 2 agent health problems in testcorp, 1 resolved"
        );
        assert_eq!(
            blocks[1]["accessory"]["url"],
            firing("www").ack_url.unwrap().as_str()
        );
        assert_eq!(blocks[1]["accessory"]["text"]["text"], "Acknowledge");
        let www = firing("www").ack_channel_url.unwrap();
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("<{www}|Acknowledge in Slack only>")),
            "{}",
            blocks[1]["text"]["text"]
        );
        assert_ne!(
            blocks[1]["accessory"]["action_id"],
            blocks[2]["accessory"]["action_id"]
        );
        assert!(blocks[3].get("accessory").is_none());
        assert!(
            blocks[3]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("*RESOLVED* · *testcorp/shop*")
        );
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .contains("[FIRING] testcorp/www · No agents online: 0 of 3 agents online")
        );
    }

    #[test]
    fn stays_within_slack_block_limits_and_escapes_mrkdwn() {
        let many: Vec<Notification> = (0..60).map(|i| firing(&format!("site-{i}"))).collect();
        let message = message("testcorp", &many);
        let blocks = message["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        assert!(
            blocks[blocks.len() - 2]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("and 15 more")
        );
        let mut odd = firing("www");
        odd.summary = "a <b> & c".into();
        let message = super::message("testcorp", &[odd]);
        assert!(
            message["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("a &lt;b&gt; &amp; c")
        );
    }
}
