//! What a Bedrock call is billed as, beyond its token counts: the tier Bedrock reports running
//! it at (not the one asked for) and the 1-hour share of its cache writes. No I/O; the relay and
//! its stream shell fill it from responses and events.

use crate::convert::response::TokenUsage;

/// How Bedrock ran a call, beyond the token counts: what is billed (spec 10.6, 12.2).
#[derive(Debug, Clone, Default)]
pub(super) struct Served {
    /// The tier sent on the call that answered (`None` after the fallback to default).
    pub(super) sent_tier: Option<String>,
    /// The tier Bedrock reported running the call at; it wins over `sent_tier` when present.
    pub(super) reported_tier: Option<String>,
    /// 1-hour cache writes as Bedrock reported them; `None` when it gave only the total.
    pub(super) cache_write_1h: Option<u64>,
    /// Every cache marker sent upstream asked for 1 hour: how an unsplit total is priced.
    pub(super) only_1h_cache: bool,
    /// The local estimate of the request's input tokens, for a stream abandoned before Bedrock
    /// reported any usage (ConverseStream reports it only at the end).
    pub(super) input_estimate: u64,
}

impl Served {
    pub(super) fn new(sent_tier: Option<String>, only_1h_cache: bool) -> Self {
        Served {
            sent_tier,
            only_1h_cache,
            ..Served::default()
        }
    }

    /// The tier billed: what Bedrock reported, else what was sent.
    pub(super) fn tier(&self) -> Option<String> {
        self.reported_tier
            .clone()
            .or_else(|| self.sent_tier.clone())
    }

    pub(super) fn cache_write_1h(&self, usage: &TokenUsage) -> u64 {
        let total = usage.cache_creation_input_tokens;
        let reported = self
            .cache_write_1h
            .unwrap_or(if self.only_1h_cache { total } else { 0 });
        reported.min(total)
    }

    /// Counts the tier asked for against the tier run, once per answered call.
    pub(super) fn observe(&self) {
        if self.sent_tier.is_none()
            && matches!(self.reported_tier.as_deref(), None | Some("default"))
        {
            return;
        }
        let label = |t: Option<&str>| match t {
            Some(t @ ("flex" | "priority" | "reserved" | "default")) => t.to_string(),
            Some(_) => "other".to_string(),
            None => "default".to_string(),
        };
        metrics::counter!("translator_service_tier_served_total",
            "requested" => label(self.sent_tier.as_deref()),
            "served" => label(self.tier().as_deref()))
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(total: u64) -> TokenUsage {
        TokenUsage {
            cache_creation_input_tokens: total,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn the_reported_tier_wins_over_the_one_sent() {
        let mut served = Served::new(Some("priority".into()), false);
        assert_eq!(served.tier().as_deref(), Some("priority"));
        served.reported_tier = Some("default".into());
        assert_eq!(served.tier().as_deref(), Some("default"));
        assert_eq!(Served::default().tier(), None);
    }

    #[test]
    fn one_hour_writes_come_from_the_report_else_from_the_markers() {
        let mut served = Served::new(None, false);
        assert_eq!(served.cache_write_1h(&writes(100)), 0);
        let all_1h = Served::new(None, true);
        assert_eq!(all_1h.cache_write_1h(&writes(100)), 100);
        served.cache_write_1h = Some(30);
        assert_eq!(served.cache_write_1h(&writes(100)), 30);
        // Never more than the total reported to the client.
        served.cache_write_1h = Some(300);
        assert_eq!(served.cache_write_1h(&writes(100)), 100);
    }
}
