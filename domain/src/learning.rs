//! What learning keys a send by: the pattern families of docs/learning.md and the
//! key of a send in each. Pure functions; the `patterns` projection counts
//! by these keys and the query side turns counts into statistics.

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use crate::send::{OutcomeFacts, OutcomeKind, SendFacts};

/// The detector families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Which content works.
    What,
    /// When it works: lead-local weekday × hour band.
    When,
    /// Which channels, in which order.
    How,
    /// Which leads convert.
    Who,
    /// Which context version and agent prompt.
    Versions,
}

impl Family {
    pub const ALL: [Family; 5] = [Self::What, Self::When, Self::How, Self::Who, Self::Versions];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::What => "what",
            Self::When => "when",
            Self::How => "how",
            Self::Who => "who",
            Self::Versions => "versions",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

/// The metrics a pattern row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Reply,
    PositiveReply,
    Meeting,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Self::Reply, Self::PositiveReply, Self::Meeting];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::PositiveReply => "positive_reply",
            Self::Meeting => "meeting",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Which metrics an event counts toward, if it is an outcome. A
/// classification adds what its reply's intent counts toward, but not the
/// reply itself, counted when it came.
pub fn metrics_of_event(event: &crate::send::SendEvent) -> Vec<Metric> {
    use crate::send::SendEvent;
    match event {
        SendEvent::SendRecorded(_) => Vec::new(),
        SendEvent::OutcomeRecorded(outcome) => metrics_of(outcome),
        SendEvent::ReplyClassified(reply) => metrics_of(reply)
            .into_iter()
            .filter(|m| *m != Metric::Reply)
            .collect(),
    }
}

/// Which metrics an outcome counts toward (each outcome kind counts once
/// per send, so these count once per send too).
pub fn metrics_of(outcome: &OutcomeFacts) -> Vec<Metric> {
    match outcome.kind {
        OutcomeKind::Replied => {
            let mut metrics = vec![Metric::Reply];
            if outcome.intent.is_some_and(|i| i.is_positive()) {
                metrics.push(Metric::PositiveReply);
            }
            metrics
        }
        OutcomeKind::MeetingBooked => vec![Metric::Meeting],
        _ => Vec::new(),
    }
}

fn band(words: u32) -> &'static str {
    match words {
        0..=3 => "1-3",
        4..=6 => "4-6",
        7..=9 => "7-9",
        _ => "10+",
    }
}

/// The hour band of the `when` family's slots.
pub fn hour_band(hour: u32) -> &'static str {
    match hour {
        0..=5 => "00-06",
        6..=8 => "06-09",
        9..=11 => "09-12",
        12..=13 => "12-14",
        14..=16 => "14-17",
        17..=19 => "17-20",
        _ => "20-24",
    }
}

/// The keys of a send in every family. `earlier_channels` are the channels
/// of the lead's earlier touches, oldest first.
pub fn keys_of(send: &SendFacts, earlier_channels: &[String]) -> Vec<(Family, String)> {
    let mut keys = Vec::new();
    let mut put = |family: Family, name: &str, value: Option<String>| {
        if let Some(value) = value {
            keys.push((family, format!("{name}={value}")));
        }
    };
    let c = &send.content;
    put(
        Family::What,
        "subject_words",
        c.subject_words.map(|w| band(w).to_owned()),
    );
    put(
        Family::What,
        "question",
        c.subject_question.map(|q| q.to_string()),
    );
    put(
        Family::What,
        "personalized",
        c.personalized.map(|p| p.to_string()),
    );
    put(Family::What, "cta", c.cta.clone());
    put(Family::What, "angle", c.angle.clone());
    put(Family::What, "variant", send.variant.clone());

    let local = send
        .lead
        .timezone
        .as_deref()
        .and_then(|tz| tz.parse::<chrono_tz::Tz>().ok())
        .map(|tz| send.sent_at.with_timezone(&tz).naive_local())
        .unwrap_or_else(|| send.sent_at.naive_utc());
    let weekday = local.weekday().to_string().to_lowercase();
    put(
        Family::When,
        "slot",
        Some(format!("{weekday} {}", hour_band(local.hour()))),
    );

    let mut sequence: Vec<&str> = earlier_channels.iter().map(String::as_str).collect();
    sequence.push(send.channel.as_str());
    let start = sequence.len().saturating_sub(4);
    put(Family::How, "sequence", Some(sequence[start..].join(">")));

    let l = &send.lead;
    put(Family::Who, "seniority", l.seniority.clone());
    put(Family::Who, "industry", l.industry.clone());
    put(
        Family::Who,
        "company_size",
        l.company_size.map(|s| s.as_str().to_owned()),
    );
    put(Family::Who, "tier", l.tier.map(|t| t.as_str().to_owned()));

    put(
        Family::Versions,
        "context_version",
        send.context_version.map(|v| v.to_string()),
    );
    put(
        Family::Versions,
        "prompt",
        send.agent.as_ref().map(|a| {
            format!(
                "{a}@{}",
                send.prompt_version.clone().unwrap_or_else(|| "?".into())
            )
        }),
    );
    keys
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::send::{Channel, ContentFeatures, LeadSnapshot, ReplyIntent, Tier};

    fn send() -> SendFacts {
        SendFacts {
            provider: "p".into(),
            provider_message_id: "m".into(),
            lead_ref: "lr_x".into(),
            lead: LeadSnapshot {
                seniority: Some("vp".into()),
                industry: Some("fintech".into()),
                timezone: Some("Australia/Sydney".into()),
                tier: Some(Tier::Warm),
                ..LeadSnapshot::default()
            },
            channel: Channel::Email,
            campaign_id: None,
            step: Some(2),
            experiment_id: None,
            variant: Some("b".into()),
            content: ContentFeatures {
                subject_words: Some(5),
                subject_question: Some(true),
                personalized: Some(false),
                body_words: Some(80),
                cta: Some("meeting".into()),
                angle: None,
            },
            context_version: Some(7),
            agent: Some("email_strategist".into()),
            prompt_version: Some("2.3".into()),
            resource: None,
            // Monday 22:30 UTC is Tuesday 09:30 in Sydney (AEDT, UTC+11).
            sent_at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 16, 22, 30, 0)
                .single()
                .expect("an unambiguous time"),
        }
    }

    #[test]
    fn a_send_is_keyed_in_every_family_with_lead_local_time() {
        let keys = keys_of(&send(), &["linkedin".into()]);
        let has = |family: Family, key: &str| keys.iter().any(|(f, k)| *f == family && k == key);
        assert!(has(Family::What, "subject_words=4-6"));
        assert!(has(Family::What, "question=true"));
        assert!(has(Family::What, "variant=b"));
        assert!(has(Family::When, "slot=tue 09-12"), "{keys:?}");
        assert!(has(Family::How, "sequence=linkedin>email"));
        assert!(has(Family::Who, "seniority=vp"));
        assert!(has(Family::Who, "tier=warm"));
        assert!(has(Family::Versions, "context_version=7"));
        assert!(has(Family::Versions, "prompt=email_strategist@2.3"));
        assert!(
            !keys.iter().any(|(_, k)| k.starts_with("angle=")),
            "absent features make no key"
        );
    }

    #[test]
    fn replies_count_as_positive_only_with_a_positive_intent() {
        let mut outcome = OutcomeFacts {
            provider: "p".into(),
            provider_message_id: "m".into(),
            kind: OutcomeKind::Replied,
            intent: Some(ReplyIntent::OutOfOffice),
            bounce_type: None,
            provider_event_id: None,
            occurred_at: chrono::Utc::now(),
        };
        assert_eq!(metrics_of(&outcome), vec![Metric::Reply]);
        outcome.intent = Some(ReplyIntent::MeetingRequest);
        assert_eq!(
            metrics_of(&outcome),
            vec![Metric::Reply, Metric::PositiveReply]
        );
        outcome.kind = OutcomeKind::Opened;
        assert!(
            metrics_of(&outcome).is_empty(),
            "opens are unreliable and not learned from"
        );
    }
}

/// One row of a pattern table, with its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternRow {
    pub key: String,
    pub sends: u64,
    pub events: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The rate over the rate of the scope's other sends (those without
    /// this key): a key half the sends carry is not diluted by itself.
    pub lift: f64,
    /// This key's sends against all the others: the two-proportion test,
    /// or Fisher's exact test where a cell expects fewer than five.
    pub p: f64,
    /// Benjamini–Hochberg over the rows of the family.
    pub q: f64,
}

/// The family and key every send is counted under: the client's baseline.
pub const BASELINE: (&str, &str) = ("all", "all");

/// Below this expected count in any cell, a row's p is Fisher's exact.
pub const MIN_EXPECTED_FOR_NORMAL: f64 = 5.0;

/// Statistics for a family's rows: `rows` are (key, sends, events) and
/// `baseline` the scope's (sends, events) over all keys.
pub fn pattern_rows(rows: &[(String, u64, u64)], baseline: (u64, u64)) -> Vec<PatternRow> {
    use crate::stats::{
        benjamini_hochberg, fisher_exact_p, min_expected_count, two_proportion_test,
        wilson_interval, Z_95,
    };
    let (total, total_events) = baseline;
    let rate_of = |events: u64, sends: u64| {
        if sends > 0 {
            events as f64 / sends as f64
        } else {
            0.0
        }
    };
    let mut out: Vec<PatternRow> = rows
        .iter()
        .map(|(key, sends, events)| {
            let rate = rate_of(*events, *sends);
            let (ci_low, ci_high) = wilson_interval(*events, *sends, Z_95);
            let rest = total.saturating_sub(*sends);
            let rest_events = total_events.saturating_sub(*events);
            let rest_rate = rate_of(rest_events, rest);
            let p = if min_expected_count(*events, *sends, rest_events, rest)
                < MIN_EXPECTED_FOR_NORMAL
            {
                fisher_exact_p(*events, *sends, rest_events, rest)
            } else {
                two_proportion_test(*events, *sends, rest_events, rest).1
            };
            PatternRow {
                key: key.clone(),
                sends: *sends,
                events: *events,
                rate,
                ci_low,
                ci_high,
                lift: if rest_rate > 0.0 {
                    rate / rest_rate
                } else {
                    0.0
                },
                p,
                q: 1.0,
            }
        })
        .collect();
    let q = benjamini_hochberg(&out.iter().map(|r| r.p).collect::<Vec<_>>());
    for (row, q) in out.iter_mut().zip(q) {
        row.q = q;
    }
    out.sort_by(|a, b| {
        a.q.total_cmp(&b.q)
            .then(b.lift.total_cmp(&a.lift))
            .then(a.key.cmp(&b.key))
    });
    out
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn rows_carry_rate_interval_lift_and_multiple_testing_corrected_q() {
        let rows = vec![
            ("cta=meeting".to_owned(), 1000, 120),
            ("cta=call".to_owned(), 1000, 60),
            ("cta=none".to_owned(), 1000, 90),
        ];
        let out = pattern_rows(&rows, (3000, 270));
        let meeting = out
            .iter()
            .find(|r| r.key == "cta=meeting")
            .cloned()
            .expect("a cta=meeting row");
        assert!((meeting.rate - 0.12).abs() < 1e-12);
        // Against the rest (150 in 2,000), not the baseline that holds it.
        assert!((meeting.lift - 0.12 / 0.075).abs() < 1e-12);
        assert!(meeting.ci_low < 0.12 && meeting.ci_high > 0.12);
        assert!(meeting.p < 0.01 && meeting.q >= meeting.p);
        let none = out
            .iter()
            .find(|r| r.key == "cta=none")
            .cloned()
            .expect("a cta=none row");
        assert!(none.p > 0.5, "the baseline-like row is not significant");
        assert_eq!(out[0].key, "cta=meeting", "most significant first");
    }

    #[test]
    fn a_row_whose_cells_expect_fewer_than_five_gets_fishers_exact_p() {
        // 7 in 171 where 1.9 are expected: the normal approximation says
        // 1.4e-4; the exact test says otherwise.
        let rows = vec![("cta=demo".to_owned(), 171, 7)];
        let out = pattern_rows(&rows, (26_500, 300));
        assert_eq!(
            out[0].p,
            crate::stats::fisher_exact_p(7, 171, 293, 26_329),
            "{out:?}"
        );
        assert!(out[0].p > 1e-3);
        assert!(out[0].p > 0.0, "never printed as 0");
    }
}

/// Published cold-outreach benchmarks: the last level of the priors a new
/// client starts from (client-learned → industry → platform → these), used
/// only when nothing better is known. Each is (family, key, verdict, source).
pub const PUBLISHED_BENCHMARKS: [(Family, &str, Verdict, &str); 4] = [
    (
        Family::What,
        "subject_words=1-3",
        Verdict::Prefer,
        "short subject lines are widely reported to get more replies",
    ),
    (
        Family::What,
        "personalized=true",
        Verdict::Prefer,
        "personalised first lines are widely reported to lift replies",
    ),
    (
        Family::What,
        "cta=question",
        Verdict::Prefer,
        "interest-based calls to action are widely reported to beat meeting asks on first touch",
    ),
    (
        Family::When,
        "slot=sat 09-12",
        Verdict::Avoid,
        "weekend sends are widely reported to underperform",
    ),
];

/// Where a suggestion's evidence comes from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Client,
    Industry,
    Platform,
    Benchmark,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Industry => "industry",
            Self::Platform => "platform",
            Self::Benchmark => "benchmark",
        }
    }
}

/// What a suggestion says of a pattern key. Written into context documents
/// (`playbook.learned`, `playbook.priors`, `best_practices`) and answered by
/// the API as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It does better than the baseline.
    Prefer,
    /// It does worse than the baseline.
    Avoid,
    /// A context version did worse than its predecessor: go back.
    RollBack,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Self::Prefer, Self::Avoid, Self::RollBack];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefer => "prefer",
            Self::Avoid => "avoid",
            Self::RollBack => "roll_back",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// Prefer what lifts the metric above the baseline, avoid the rest.
    pub fn of_lift(lift: f64) -> Self {
        if lift > 1.0 {
            Self::Prefer
        } else {
            Self::Avoid
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn families_levels_and_verdicts_serialize_as_their_names() {
        for family in Family::ALL {
            assert_eq!(
                serde_json::to_value(family).expect("serializes"),
                family.as_str()
            );
        }
        for level in [
            Level::Client,
            Level::Industry,
            Level::Platform,
            Level::Benchmark,
        ] {
            assert_eq!(
                serde_json::to_value(level).expect("serializes"),
                level.as_str()
            );
        }
        for verdict in Verdict::ALL {
            assert_eq!(
                serde_json::to_value(verdict).expect("serializes"),
                verdict.as_str()
            );
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
        }
        assert_eq!(
            Verdict::ALL.map(Verdict::as_str),
            ["prefer", "avoid", "roll_back"]
        );
    }

    #[test]
    fn a_lift_above_one_is_preferred_and_anything_else_avoided() {
        assert_eq!(Verdict::of_lift(1.3), Verdict::Prefer);
        assert_eq!(Verdict::of_lift(1.0), Verdict::Avoid);
        assert_eq!(Verdict::of_lift(0.7), Verdict::Avoid);
    }
}
