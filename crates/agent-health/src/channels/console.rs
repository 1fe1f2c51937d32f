//! Console channel: the notification as plain text on standard output (demo and CLI runs).

use super::{Notification, Status};

pub fn text(corp: &str, channel: &str, items: &[Notification]) -> String {
    let mut out = format!("── agent health · corp {corp} · channel {channel} ──\n");
    for item in items {
        out.push_str(&item.headline());
        out.push('\n');
        out.push_str(&format!("    severity: {}\n", item.severity));
        if item.status == Status::Firing {
            out.push_str(&format!(
                "    since {}\n",
                item.since.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        if let Some(url) = &item.ack_url {
            out.push_str(&format!("    acknowledge: {url}\n"));
        }
        if let Some(url) = &item.ack_channel_url {
            out.push_str(&format!("    acknowledge on {channel} only: {url}\n"));
        }
        for link in &item.links {
            out.push_str(&format!(
                "    {}: {}\n",
                link.label.to_lowercase(),
                link.url
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::fixtures::{firing, resolved};

    #[test]
    fn prints_each_item_with_its_ack_link() {
        let text = text("testcorp", "console", &[firing("www"), resolved("api")]);
        assert!(text.contains("[FIRING] testcorp/www · No agents online: 0 of 3 agents online\n"));
        assert!(text.contains("    severity: critical\n"), "{text}");
        assert!(text.contains(
            "    acknowledge: https://ack.example.com/ack?check=www%2Fno_agents_online&sig=x\n"
        ));
        assert!(text.contains(
            "    acknowledge on console only: https://ack.example.com/ack?check=www%2Fno_agents_online&channels=c&sig=y\n"
        ));
        assert!(text.contains("    runbook: https://wiki.example/agent-health#no_agents_online\n"));
        assert!(
            text.contains("[RESOLVED] testcorp/api · No agents online: recovered (was: 0 of 3")
        );
    }
}
