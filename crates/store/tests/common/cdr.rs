//! Brute-force answers to CDR queries, shared by the SQLite-only and the both-backends tests.

use std::collections::HashSet;

use calls::Leg;
use store::{CdrFilter, CdrSort, Match, StoredLeg};

/// What the store sorts a leg by, derived from the leg itself.
pub fn sort_key(l: &StoredLeg, sort: CdrSort) -> (i64, String) {
    let l2 = &l.leg;
    match sort {
        CdrSort::Start => (l2.start, String::new()),
        CdrSort::Duration => (l2.end - l2.start, String::new()),
        CdrSort::Caller => (0, l2.caller.clone()),
        CdrSort::Called => (0, l2.called.clone()),
        CdrSort::Code => (l2.last_response.map_or(0, i64::from), String::new()),
    }
}

/// Call-IDs of the legs a filter should select; an empty number pattern filters nothing.
pub fn brute(legs: &[Leg], f: &CdrFilter) -> HashSet<String> {
    let num = |v: &str, p: &Option<String>| match p.as_deref().filter(|p| !p.is_empty()) {
        None => true,
        Some(p) => match f.number_match {
            Match::Prefix => v.starts_with(p),
            Match::Contains => v.contains(p),
        },
    };
    legs.iter()
        .filter(|l| f.start_from.is_none_or(|t| l.start >= t))
        .filter(|l| f.start_before.is_none_or(|t| l.start < t))
        .filter(|l| num(&l.caller, &f.caller) && num(&l.called, &f.called))
        .filter(|l| f.sensor_id.is_none_or(|s| l.sensor_id == s))
        .filter(|l| f.code.is_none_or(|c| l.last_response == Some(c)))
        .filter(|l| f.answered.is_none_or(|a| l.answer.is_some() == a))
        .map(|l| l.call_id.clone())
        .collect()
}
