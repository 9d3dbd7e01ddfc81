//! Explain a count: the legs active at an instant, grouped by dedup key, and for every group
//! why it was not merged with another.
//!
//! This answers "why is my count higher than expected" (SPEC §2): each group is one channel, so
//! `groups.len()` equals `channels(at)`. For a day's peak, take [`crate::Period::peak`]`.at` of
//! the day from the report and explain that instant.
//!
//! # Reasons a group is not merged
//! Two legs merge only when their dedup keys are equal. Groups therefore always differ in
//! numbers; the reasons below say what *relates* a group to another one despite that, so the
//! user sees which extra channels come from one logical call. For legs `x` in group G and `y`
//! in group H (G ≠ H, both active at the instant), the links are:
//!
//! - [`Link::Replaces`]: `y`'s Replaces header names `x`'s Call-ID (attended transfer: the new
//!   INVITE replaces the old dialog). The Call-ID is the header value before its first `;`.
//! - [`Link::ReferToReplaces`]: `x`'s Refer-To URI carries an embedded `Replaces=` naming `y`'s
//!   Call-ID (attended transfer seen from the REFER side; the value is percent-decoded).
//! - [`Link::ReferTo`]: `x` carried a REFER whose Refer-To user has the same dedup part as
//!   `y`'s called, and `y`'s caller is one of `x`'s two parties (the transferee calling the
//!   transfer target: blind transfer).
//! - [`Link::ReferredBy`]: `y` was created by a referral (has Referred-By) whose user has the
//!   dedup part of one of `x`'s parties, and `y` shares a party with `x`.
//! - [`Link::ForkSameCallId`]: `x` and `y` have the same Call-ID (one forked INVITE whose
//!   branches were recorded as separate legs with different called numbers, e.g. by sensors
//!   that each saw one branch).
//! - [`Link::ForkSameFromTag`]: `x` and `y` have the same non-empty From-tag and the same caller
//!   part, with different Call-IDs (one caller's INVITE fanned out by a forking B2BUA that
//!   kept the From-tag).
//!
//! A group with no link to any other active group gets [`NotMerged::DifferentNumbers`]: it is
//! an independent call whose key differs from every other group's.

use std::collections::HashMap;

use calls::{Leg, Micros};

use crate::key::dedup_part;
use crate::sweep::{ActiveMode, active_interval};

/// One active leg as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedLeg {
    pub sensor_id: u32,
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub start: Micros,
    pub answer: Option<Micros>,
    pub end: Micros,
    /// The active interval `[active_from, active_to)` under the mode used.
    pub active_from: Micros,
    pub active_to: Micros,
}

/// What relates two legs of different groups (see the module doc for the precise rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    Replaces,
    ReferToReplaces,
    ReferTo,
    ReferredBy,
    ForkSameCallId,
    ForkSameFromTag,
}

impl Link {
    /// Transfer links (as opposed to fork links).
    pub fn is_transfer(self) -> bool {
        matches!(
            self,
            Link::Replaces | Link::ReferToReplaces | Link::ReferTo | Link::ReferredBy
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Link::Replaces => "transfer: Replaces names the other leg's Call-ID",
            Link::ReferToReplaces => {
                "transfer: Refer-To carries Replaces with the other leg's Call-ID"
            }
            Link::ReferTo => "transfer: Refer-To target is the other leg's called number",
            Link::ReferredBy => "transfer: Referred-By names a party of the other leg",
            Link::ForkSameCallId => "fork: same Call-ID, different called number",
            Link::ForkSameFromTag => "fork: same caller and From-tag, different Call-ID",
        }
    }
}

/// Why a group was not merged with others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMerged {
    /// No link to any other active group: an independent call.
    DifferentNumbers,
    /// Related to group `other` (an index into [`Explanation::groups`]) by `link` between leg
    /// `leg` of this group and leg `other_leg` of the other (indexes into `legs`).
    Linked {
        link: Link,
        leg: usize,
        other: usize,
        other_leg: usize,
    },
}

/// One channel: the legs sharing a dedup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The dedup parts (last 6 digits, or the lower-cased text).
    pub caller_part: String,
    pub called_part: String,
    /// Ordered by start, sensor, Call-ID.
    pub legs: Vec<ExplainedLeg>,
    /// `[DifferentNumbers]` or one entry per link found.
    pub not_merged: Vec<NotMerged>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub at: Micros,
    /// `channels(at)` = `groups.len()`.
    pub channels: usize,
    /// Ordered by caller part, then called part.
    pub groups: Vec<Group>,
}

/// The user of the first SIP/SIPS/TEL URI in a header value (`"Bob" <sip:1002@pbx;x=y>` →
/// `1002`), or `None` when there is no URI with a user. Public so the CDR detail page applies
/// the same link rules to a pair of legs.
pub fn uri_user(value: &str) -> Option<&str> {
    let lower = value.to_ascii_lowercase();
    let (pos, skip) = ["sips:", "sip:", "tel:"]
        .iter()
        .filter_map(|s| lower.find(s).map(|p| (p, s.len())))
        .min()?;
    let rest = &value[pos + skip..];
    let is_tel = lower[pos..].starts_with("tel:");
    let stop = rest.find(['>', ';', '?', ',', ' ']).unwrap_or(rest.len());
    let user = if is_tel {
        &rest[..stop]
    } else {
        let at = rest.find('@')?;
        if at > stop {
            return None;
        }
        &rest[..at]
    };
    let user = user.split(':').next().unwrap_or(user); // drop a password
    (!user.is_empty()).then_some(user)
}

/// The Call-ID in a Replaces header value: the part before the first `;`.
pub fn replaces_call_id(value: &str) -> Option<String> {
    let id = value.split(';').next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The Call-ID of a `Replaces=` embedded in a Refer-To URI's headers, percent-decoded.
pub fn refer_to_replaces(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let p = lower.find("replaces=")?;
    let raw = &value[p + "replaces=".len()..];
    let raw = &raw[..raw.find(['&', '>']).unwrap_or(raw.len())];
    replaces_call_id(&percent_decode(raw))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A leg with its active interval.
type ActiveLeg<'a> = (&'a Leg, Micros, Micros);

/// What explain needs per active leg, beside the shown fields.
struct Facts<'a> {
    leg: &'a Leg,
    caller: String,
    called: String,
    group: usize,
    index: usize,
}

/// The legs active at `at` (under `mode`), grouped by dedup key, with the reasons groups did not
/// merge. `legs` may contain any legs (e.g. all legs overlapping the instant from the store);
/// those not active at `at` are ignored. Must be given every active leg from all sensors for the
/// count to equal `channels(at)`.
pub fn explain<'a>(
    legs: impl IntoIterator<Item = &'a Leg>,
    at: Micros,
    mode: ActiveMode,
) -> Explanation {
    let mut by_key: HashMap<(String, String), Vec<ActiveLeg<'_>>> = HashMap::new();
    for leg in legs {
        if let Some((from, to)) = active_interval(leg.start, leg.answer, leg.end, mode)
            && from <= at
            && at < to
        {
            by_key
                .entry((dedup_part(&leg.caller), dedup_part(&leg.called)))
                .or_default()
                .push((leg, from, to));
        }
    }
    let mut keyed: Vec<_> = by_key.into_iter().collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));

    let mut groups = Vec::with_capacity(keyed.len());
    let mut facts: Vec<Facts<'_>> = Vec::new();
    for (g, ((caller_part, called_part), mut members)) in keyed.into_iter().enumerate() {
        members.sort_by(|a, b| {
            (a.0.start, a.0.sensor_id, &a.0.call_id).cmp(&(b.0.start, b.0.sensor_id, &b.0.call_id))
        });
        let mut shown = Vec::with_capacity(members.len());
        for (index, (leg, from, to)) in members.into_iter().enumerate() {
            shown.push(ExplainedLeg {
                sensor_id: leg.sensor_id,
                call_id: leg.call_id.clone(),
                caller: leg.caller.clone(),
                called: leg.called.clone(),
                start: leg.start,
                answer: leg.answer,
                end: leg.end,
                active_from: from,
                active_to: to,
            });
            facts.push(Facts {
                leg,
                caller: caller_part.clone(),
                called: called_part.clone(),
                group: g,
                index,
            });
        }
        groups.push(Group {
            caller_part,
            called_part,
            legs: shown,
            not_merged: Vec::new(),
        });
    }

    // Indexes so that finding links costs O(legs), not O(legs²): thousands of legs can be active.
    let mut by_call_id: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_called: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_party: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_from_tag: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        by_call_id
            .entry(f.leg.call_id.as_str())
            .or_default()
            .push(i);
        by_called.entry(f.called.as_str()).or_default().push(i);
        by_party.entry(f.caller.as_str()).or_default().push(i);
        if f.called != f.caller {
            by_party.entry(f.called.as_str()).or_default().push(i);
        }
        if let Some(tag) = f.leg.from_tag.as_deref().filter(|t| !t.is_empty()) {
            by_from_tag
                .entry((f.caller.as_str(), tag))
                .or_default()
                .push(i);
        }
    }
    let none = Vec::new();
    let is_party = |f: &Facts<'_>, part: &str| f.caller == part || f.called == part;

    // (link, carrier leg x, related leg y), found once each.
    let mut links: Vec<(Link, usize, usize)> = Vec::new();
    for (y, fy) in facts.iter().enumerate() {
        if let Some(id) = fy.leg.replaces.as_deref().and_then(replaces_call_id) {
            for &x in by_call_id.get(id.as_str()).unwrap_or(&none) {
                links.push((Link::Replaces, y, x));
            }
        }
        if let Some(refer_to) = fy.leg.refer_to.as_deref() {
            if let Some(id) = refer_to_replaces(refer_to) {
                for &x in by_call_id.get(id.as_str()).unwrap_or(&none) {
                    links.push((Link::ReferToReplaces, y, x));
                }
            }
            if let Some(target) = uri_user(refer_to).map(dedup_part) {
                for &x in by_called.get(target.as_str()).unwrap_or(&none) {
                    if is_party(fy, &facts[x].caller) {
                        links.push((Link::ReferTo, y, x));
                    }
                }
            }
        }
        if let Some(referrer) = fy
            .leg
            .referred_by
            .as_deref()
            .and_then(uri_user)
            .map(dedup_part)
        {
            for &x in by_party.get(referrer.as_str()).unwrap_or(&none) {
                if is_party(&facts[x], &fy.caller) || is_party(&facts[x], &fy.called) {
                    links.push((Link::ReferredBy, y, x));
                }
            }
        }
        for &x in by_call_id.get(fy.leg.call_id.as_str()).unwrap_or(&none) {
            if x > y {
                links.push((Link::ForkSameCallId, y, x));
            }
        }
        if let Some(tag) = fy.leg.from_tag.as_deref().filter(|t| !t.is_empty()) {
            for &x in by_from_tag.get(&(fy.caller.as_str(), tag)).unwrap_or(&none) {
                if x > y && facts[x].leg.call_id != fy.leg.call_id {
                    links.push((Link::ForkSameFromTag, y, x));
                }
            }
        }
    }

    for (link, a, b) in links {
        let (fa, fb) = (&facts[a], &facts[b]);
        if fa.group == fb.group {
            continue; // merged anyway: nothing to explain
        }
        for (from, to) in [(fa, fb), (fb, fa)] {
            let entry = NotMerged::Linked {
                link,
                leg: from.index,
                other: to.group,
                other_leg: to.index,
            };
            let list = &mut groups[from.group].not_merged;
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
    }
    for g in &mut groups {
        if g.not_merged.is_empty() {
            g.not_merged.push(NotMerged::DifferentNumbers);
        }
    }
    Explanation {
        at,
        channels: groups.len(),
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(
        sensor: u32,
        call_id: &str,
        caller: &str,
        called: &str,
        start: Micros,
        end: Micros,
    ) -> Leg {
        Leg::builder()
            .call_id(call_id)
            .sensor_id(sensor)
            .caller(caller)
            .called(called)
            .start(start)
            .answer(Some(start + 1))
            .end(end)
            .last_response(Some(200))
            .build()
    }

    fn links_of(g: &Group) -> Vec<Link> {
        g.not_merged
            .iter()
            .filter_map(|n| match n {
                NotMerged::Linked { link, .. } => Some(*link),
                NotMerged::DifferentNumbers => None,
            })
            .collect()
    }

    #[test]
    fn doc_examples_are_one_channel_each() {
        for (a, b) in [("123456001", "123456002"), ("123456789", "987654321")] {
            let legs = [leg(1, "c1", a, b, 0, 100)];
            let e = explain(&legs, 50, ActiveMode::Signalling);
            assert_eq!(e.channels, 1);
            assert_eq!(e.groups[0].not_merged, vec![NotMerged::DifferentNumbers]);
        }
        // Different numbers: two channels, each an independent call.
        let legs = [
            leg(1, "c1", "123456001", "123456002", 0, 100),
            leg(1, "c2", "123456789", "987654321", 0, 100),
        ];
        let e = explain(&legs, 50, ActiveMode::Signalling);
        assert_eq!(e.channels, 2);
        assert!(
            e.groups
                .iter()
                .all(|g| g.not_merged == vec![NotMerged::DifferentNumbers])
        );
    }

    #[test]
    fn same_call_from_two_sensors_is_one_group() {
        let legs = [
            leg(1, "abc@h", "+44 20 7946 0123", "5551234", 0, 100),
            leg(2, "abc@h", "02079460123", "+1 555 1234", 3, 103),
        ];
        let e = explain(&legs, 50, ActiveMode::Signalling);
        assert_eq!(e.channels, 1);
        assert_eq!(e.groups[0].legs.len(), 2);
        assert_eq!(
            (
                e.groups[0].caller_part.as_str(),
                e.groups[0].called_part.as_str()
            ),
            ("460123", "551234")
        );
        assert_eq!(e.groups[0].legs[1].sensor_id, 2);
    }

    #[test]
    fn b2bua_legs_with_the_same_numbers_are_one_group() {
        let legs = [
            leg(1, "in-leg", "1001", "2002", 0, 100),
            leg(1, "out-leg", "1001", "2002", 1, 99),
        ];
        let e = explain(&legs, 50, ActiveMode::Signalling);
        assert_eq!(e.channels, 1);
        assert_eq!(e.groups[0].not_merged, vec![NotMerged::DifferentNumbers]);
    }

    #[test]
    fn blind_transfer_is_two_channels_linked_by_refer_to_and_referred_by() {
        // A (1001) calls B (2002); B sends REFER to C (3003); A calls C with Referred-By B.
        let mut ab = leg(1, "ab", "1001", "2002", 0, 100);
        ab.refer_to = Some("<sip:3003@pbx.example.com>".into());
        let mut ac = leg(1, "ac", "1001", "3003", 40, 200);
        ac.referred_by = Some("\"Bob\" <sip:2002@pbx.example.com>".into());
        let e = explain(&[ab, ac], 50, ActiveMode::Signalling);
        assert_eq!(e.channels, 2);
        // Groups sorted by key: (1001, 2002) then (1001, 3003).
        assert_eq!(
            links_of(&e.groups[0]),
            vec![Link::ReferTo, Link::ReferredBy]
        );
        assert_eq!(
            links_of(&e.groups[1]),
            vec![Link::ReferTo, Link::ReferredBy]
        );
        assert_eq!(
            e.groups[0].not_merged[0],
            NotMerged::Linked {
                link: Link::ReferTo,
                leg: 0,
                other: 1,
                other_leg: 0
            }
        );
        assert!(Link::ReferTo.is_transfer());
    }

    #[test]
    fn referred_by_alone_links() {
        let ab = leg(1, "ab", "1001", "2002", 0, 100);
        let mut ac = leg(1, "ac", "1001", "3003", 40, 200);
        ac.referred_by = Some("<sip:2002@h>".into());
        let e = explain(&[ab, ac], 50, ActiveMode::Signalling);
        assert_eq!(links_of(&e.groups[0]), vec![Link::ReferredBy]);
        // Referred-By naming a party but the new leg sharing no party: no link.
        let ab = leg(1, "ab", "1001", "2002", 0, 100);
        let mut xy = leg(1, "xy", "4004", "3003", 40, 200);
        xy.referred_by = Some("<sip:2002@h>".into());
        let e = explain(&[ab, xy], 50, ActiveMode::Signalling);
        assert!(
            e.groups
                .iter()
                .all(|g| g.not_merged == vec![NotMerged::DifferentNumbers])
        );
    }

    #[test]
    fn attended_transfer_links_by_replaces() {
        // B consulted C (call "bc"); A's new call to C replaces "bc".
        let bc = leg(1, "bc@pbx", "2002", "3003", 0, 100);
        let mut ac = leg(1, "ac@pbx", "1001", "3003", 50, 200);
        ac.replaces = Some("bc@pbx;to-tag=7;from-tag=9".into());
        let e = explain(&[bc, ac], 60, ActiveMode::Signalling);
        assert_eq!(e.channels, 2);
        assert_eq!(links_of(&e.groups[0]), vec![Link::Replaces]);
        assert_eq!(links_of(&e.groups[1]), vec![Link::Replaces]);
    }

    #[test]
    fn attended_transfer_links_by_refer_to_replaces() {
        let mut ab = leg(1, "ab", "1001", "2002", 0, 100);
        ab.refer_to = Some("<sip:3003@pbx?Replaces=bc%40pbx%3Bto-tag%3D7%3Bfrom-tag%3D9>".into());
        let bc = leg(1, "bc@pbx", "2002", "3003", 10, 100);
        let e = explain(&[ab, bc], 60, ActiveMode::Signalling);
        // The REFER's target (3003) is also bc's called number and bc's caller (2002) is a
        // party of ab, so the plain Refer-To rule finds the link as well.
        assert_eq!(
            links_of(&e.groups[0]),
            vec![Link::ReferToReplaces, Link::ReferTo]
        );
        // Without that shared number only the embedded Replaces links them.
        let mut ab = leg(1, "ab", "1001", "2002", 0, 100);
        ab.refer_to = Some("<sip:9009@pbx?Replaces=bc%40pbx%3Bto-tag%3D7>".into());
        let bc = leg(1, "bc@pbx", "2002", "3003", 10, 100);
        let e = explain(&[ab, bc], 60, ActiveMode::Signalling);
        assert_eq!(links_of(&e.groups[0]), vec![Link::ReferToReplaces]);
    }

    #[test]
    fn forks() {
        // Same Call-ID, different called (two sensors each saw one branch).
        let a = leg(1, "fork@h", "1001", "2002", 0, 100);
        let b = leg(2, "fork@h", "1001", "2003", 0, 100);
        let e = explain(&[a, b], 10, ActiveMode::Signalling);
        assert_eq!(e.channels, 2);
        assert_eq!(links_of(&e.groups[0]), vec![Link::ForkSameCallId]);
        assert!(!Link::ForkSameCallId.is_transfer());
        // Same caller and From-tag, different Call-IDs.
        let mut a = leg(1, "x1", "1001", "2002", 0, 100);
        let mut b = leg(1, "x2", "1001", "2003", 0, 100);
        a.from_tag = Some("tag1".into());
        b.from_tag = Some("tag1".into());
        let e = explain(&[a.clone(), b.clone()], 10, ActiveMode::Signalling);
        assert_eq!(links_of(&e.groups[1]), vec![Link::ForkSameFromTag]);
        // The same From-tag from a different caller is no fork.
        b.caller = "1009".into();
        let e = explain(&[a, b], 10, ActiveMode::Signalling);
        assert!(
            e.groups
                .iter()
                .all(|g| g.not_merged == vec![NotMerged::DifferentNumbers])
        );
    }

    #[test]
    fn only_legs_active_at_the_instant_half_open() {
        let legs = [
            leg(1, "ends", "1", "2", 0, 50),
            leg(1, "starts", "3", "4", 50, 60),
            leg(1, "zero", "5", "6", 50, 50),
        ];
        let e = explain(&legs, 50, ActiveMode::Signalling);
        assert_eq!(e.channels, 1);
        assert_eq!(e.groups[0].legs[0].call_id, "starts");
        // Answered mode: active from the answer (start + 1).
        let e = explain(&legs, 50, ActiveMode::Answered);
        assert_eq!(e.channels, 0);
        assert_eq!(explain(&legs, 51, ActiveMode::Answered).channels, 1);
    }

    #[test]
    fn header_parsing() {
        assert_eq!(
            uri_user("\"Bob\" <sip:2002@pbx;transport=udp>"),
            Some("2002")
        );
        assert_eq!(uri_user("<SIPS:alice:secret@h>"), Some("alice"));
        assert_eq!(
            uri_user("<tel:+1-555-1234;phone-context=x>"),
            Some("+1-555-1234")
        );
        assert_eq!(uri_user("<sip:pbx.example.com>"), None);
        assert_eq!(uri_user("garbage"), None);
        assert_eq!(replaces_call_id(" id@h ;to-tag=1"), Some("id@h".into()));
        assert_eq!(replaces_call_id(";to-tag=1"), None);
        assert_eq!(
            refer_to_replaces("<sip:x@h?Replaces=a%40b%3Bto-tag%3D1&x=y>"),
            Some("a@b".into())
        );
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
