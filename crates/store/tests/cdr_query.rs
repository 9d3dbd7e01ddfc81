//! CDR browser queries on a real SQLite file: every filter against a brute-force filter of
//! the same legs, keyset paging in every sort order visits each leg exactly once (forwards and
//! backwards), and related legs (same dedup key, transfer links) are found with their reason.

#[path = "common/cdr.rs"]
mod cdr;
mod common;

use std::collections::HashSet;

use calls::Leg;
use cdr::{brute, sort_key};
use channels::explain::Link;
use common::{D0, S, leg};
use store::{CdrFilter, CdrQuery, CdrSort, Match, MatchCount, PageAt, Relation, Store, StoredLeg};

/// 240 legs with repeated starts (ties), several callers sharing prefixes, two sensors, and a
/// mix of codes and answered/unanswered.
fn sample() -> Vec<Leg> {
    (0..240)
        .map(|i: i64| {
            let caller = format!(
                "{}{:03}",
                ["4930", "4940", "1555"][(i % 3) as usize],
                i % 17
            );
            let called = format!("{}", 7000 + i % 11);
            // Every start is shared by four legs: ties must not lose or repeat legs on a page
            // boundary.
            let start = D0 + (i / 4) * 60 * S;
            let mut l = leg(
                1 + (i % 2) as u32,
                &format!("c{i}"),
                &caller,
                &called,
                start,
                start + (i % 13 + 1) * S,
            );
            if i % 5 == 0 {
                l.answer = None;
                l.last_response = Some(if i % 10 == 0 { 486 } else { 404 });
            }
            if i % 31 == 0 {
                l.last_response = None;
            }
            l
        })
        .collect()
}

/// A store holding `legs`, their ids spread over many number-index segments (a segment is
/// 65 536 consecutive ids), as in a database of millions of legs: every query below then
/// has to combine segments, which a few hundred legs in one segment would never show.
async fn open_with(legs: &[Leg]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    store.insert_legs(legs).await.unwrap();
    let db = rusqlite::Connection::open(dir.path().join(store::SQLITE_FILE_NAME)).unwrap();
    // No moved id meets an unmoved one: the samples hold far fewer than 10 M legs.
    let moved = db
        .execute("UPDATE legs SET id = id * 3001 + 10000000", [])
        .unwrap();
    assert_eq!(moved, legs.len());
    (dir, store)
}

/// Pages through the whole list forwards; returns the ids in order, checking the `prev`
/// cursor of each page leads back to exactly the page before.
async fn all_pages(store: &Store, mut q: CdrQuery) -> Vec<StoredLeg> {
    let mut out: Vec<StoredLeg> = Vec::new();
    let mut pages: Vec<Vec<i64>> = Vec::new();
    q.page = PageAt::First;
    loop {
        let page = store.cdr_page(&q).await.unwrap();
        assert!(page.legs.len() <= q.limit as usize);
        let ids: Vec<i64> = page.legs.iter().map(|l| l.id).collect();
        if let (Some(prev), Some(before)) = (page.prev.clone(), pages.last()) {
            let back = store
                .cdr_page(&CdrQuery {
                    page: PageAt::Before(prev),
                    ..q.clone()
                })
                .await
                .unwrap();
            let back_ids: Vec<i64> = back.legs.iter().map(|l| l.id).collect();
            assert_eq!(
                &back_ids, before,
                "previous page of a page is the page before"
            );
        } else {
            assert!(pages.is_empty(), "only the first page has no previous page");
        }
        pages.push(ids);
        out.extend(page.legs);
        match page.next {
            Some(c) => q.page = PageAt::After(c),
            None => break,
        }
    }
    out
}

#[tokio::test]
async fn keyset_paging_visits_every_leg_once_in_every_sort() {
    let legs = sample();
    let (_dir, store) = open_with(&legs).await;
    for sort in [
        CdrSort::Start,
        CdrSort::Duration,
        CdrSort::Caller,
        CdrSort::Called,
        CdrSort::Code,
    ] {
        for descending in [true, false] {
            let q = CdrQuery {
                sort,
                descending,
                limit: 7,
                ..CdrQuery::default()
            };
            let got = all_pages(&store, q).await;
            assert_eq!(got.len(), legs.len(), "{sort:?} desc={descending}");
            let ids: HashSet<i64> = got.iter().map(|l| l.id).collect();
            assert_eq!(ids.len(), legs.len(), "no leg twice: {sort:?}");
            for w in got.windows(2) {
                let (a, b) = (
                    (sort_key(&w[0], sort), w[0].id),
                    (sort_key(&w[1], sort), w[1].id),
                );
                if descending {
                    assert!(a > b, "{sort:?} desc: {a:?} before {b:?}");
                } else {
                    assert!(a < b, "{sort:?} asc: {a:?} before {b:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn default_order_is_newest_first() {
    let (_dir, store) = open_with(&sample()).await;
    let page = store.cdr_page(&CdrQuery::default()).await.unwrap();
    assert_eq!(page.legs.len(), 50);
    assert_eq!(page.legs[0].leg.start, D0 + 59 * 60 * S);
    assert!(page.prev.is_none() && page.next.is_some());
}

#[tokio::test]
async fn filters_match_a_brute_force_filter_and_count() {
    let legs = sample();
    let (_dir, store) = open_with(&legs).await;
    let filters = [
        CdrFilter {
            caller: Some("4930".into()),
            ..Default::default()
        },
        CdrFilter {
            caller: Some("0007".into()),
            number_match: Match::Contains,
            ..Default::default()
        },
        CdrFilter {
            called: Some("700".into()),
            sensor_id: Some(2),
            ..Default::default()
        },
        CdrFilter {
            code: Some(486),
            ..Default::default()
        },
        CdrFilter {
            answered: Some(false),
            ..Default::default()
        },
        CdrFilter {
            answered: Some(true),
            start_from: Some(D0 + 10 * 60 * S),
            start_before: Some(D0 + 20 * 60 * S),
            ..Default::default()
        },
        CdrFilter {
            caller: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for f in filters {
        let want = brute(&legs, &f);
        let q = CdrQuery {
            filter: f.clone(),
            limit: 9,
            count: true,
            ..CdrQuery::default()
        };
        let got: HashSet<String> = all_pages(&store, q.clone())
            .await
            .into_iter()
            .map(|l| l.leg.call_id)
            .collect();
        assert_eq!(got, want, "{f:?}");
        let first = store.cdr_page(&q).await.unwrap();
        assert_eq!(
            first.count,
            Some(MatchCount::Exact(want.len() as u64)),
            "{f:?}"
        );
    }
}

/// 7000 legs: ~6300 callers start with "49" (more than `NUMBER_INDEX_MAX`, so their pages
/// come from the start index), "4907" and "44" match a few hundred (from the number index).
fn many_sharing_a_prefix() -> Vec<Leg> {
    (0..7000)
        .map(|i: i64| {
            let caller = if i % 10 == 0 {
                format!("44{i:05}")
            } else {
                format!("49{:02}{:03}", i % 97, i % 1000)
            };
            let called = format!("{}{:04}", ["80", "81"][(i % 2) as usize], i % 1013);
            let start = D0 + (i / 3) * S;
            let mut l = leg(
                1 + (i % 2) as u32,
                &format!("p{i}"),
                &caller,
                &called,
                start,
                start + (i % 17 + 1) * S,
            );
            if i % 7 == 0 {
                l.answer = None;
                l.last_response = Some(486);
            }
            l
        })
        .collect()
}

#[tokio::test]
async fn prefix_pages_are_right_from_the_number_index_and_from_the_start_index() {
    const { assert!(store::NUMBER_INDEX_MAX < 6000) };
    let legs = many_sharing_a_prefix();
    let (_dir, store) = open_with(&legs).await;
    let prefix = |caller: &str, called: Option<&str>| CdrFilter {
        caller: Some(caller.into()),
        called: called.map(str::to_string),
        ..Default::default()
    };
    let filters = [
        prefix("49", None),
        prefix("4907", None),
        prefix("44", None),
        prefix("49", Some("81")),
        prefix("4907", Some("80")),
        CdrFilter {
            code: Some(486),
            ..prefix("49", None)
        },
        CdrFilter {
            start_from: Some(D0 + 100 * S),
            start_before: Some(D0 + 1900 * S),
            ..prefix("49", None)
        },
        CdrFilter {
            sensor_id: Some(2),
            start_from: Some(D0 + 100 * S),
            ..prefix("4907", None)
        },
    ];
    for f in filters {
        let want = brute(&legs, &f);
        for (sort, descending) in [
            (CdrSort::Start, true),
            (CdrSort::Start, false),
            (CdrSort::Duration, true),
            (CdrSort::Caller, false),
        ] {
            let q = CdrQuery {
                filter: f.clone(),
                sort,
                descending,
                limit: 1000,
                count: true,
                ..CdrQuery::default()
            };
            let got = all_pages(&store, q.clone()).await;
            let ids: HashSet<String> = got.iter().map(|l| l.leg.call_id.clone()).collect();
            assert_eq!(ids.len(), got.len(), "no leg twice: {f:?} {sort:?}");
            assert_eq!(ids, want, "{f:?} {sort:?} desc={descending}");
            for w in got.windows(2) {
                let (a, b) = (
                    (sort_key(&w[0], sort), w[0].id),
                    (sort_key(&w[1], sort), w[1].id),
                );
                assert!(
                    if descending { a > b } else { a < b },
                    "{f:?} {sort:?}: {a:?} before {b:?}"
                );
            }
            let first = store.cdr_page(&q).await.unwrap();
            assert_eq!(
                first.count,
                Some(MatchCount::Exact(want.len() as u64)),
                "{f:?}"
            );
        }
    }
}

#[tokio::test]
async fn garbage_cursors_do_not_fail() {
    assert!(store::Cursor::parse("x", CdrSort::Start).is_none());
    assert!(store::Cursor::parse("1.abc", CdrSort::Start).is_none());
    let c = store::Cursor::parse("12.a.b", CdrSort::Caller).unwrap();
    assert_eq!(c.id, 12);
    assert_eq!(c.to_token(), "12.a.b");
    // A cursor of a text sort used with a number sort still answers.
    let (_dir, store) = open_with(&sample()).await;
    let page = store
        .cdr_page(&CdrQuery {
            page: PageAt::After(c),
            ..CdrQuery::default()
        })
        .await
        .unwrap();
    assert!(!page.legs.is_empty());
}

#[tokio::test]
async fn leg_by_id_and_related_legs() {
    let t = D0 + 3600 * S;
    // The same call seen by two sensors (same numbers, overlapping).
    let a1 = leg(1, "a1", "+49 30 1234567", "7001", t, t + 60 * S);
    let a2 = leg(2, "a2", "1234567", "7001", t + S, t + 61 * S);
    // A blind transfer: 7001 refers the caller to 7002; the new leg carries Referred-By.
    let mut b = leg(1, "b", "1234567", "7002", t + 50 * S, t + 200 * S);
    b.referred_by = Some("<sip:7001@pbx.example.com>".into());
    // An attended transfer replacing a1's dialog.
    let mut c = leg(1, "c", "7003", "7001", t + 55 * S, t + 90 * S);
    c.replaces = Some("a1;to-tag=x;from-tag=y".into());
    c.caller = "7003".into();
    // Unrelated: other numbers at the same time, and the same numbers a day later.
    let other = leg(1, "o", "5550000", "8000", t, t + 60 * S);
    let later = leg(
        1,
        "later",
        "1234567",
        "7001",
        t + 86_400 * S,
        t + 86_460 * S,
    );
    let (_dir, store) = open_with(&[a1, a2, b, c, other, later]).await;

    let all = store
        .cdr_page(&CdrQuery {
            descending: false,
            ..CdrQuery::default()
        })
        .await
        .unwrap()
        .legs;
    let id = |cid: &str| all.iter().find(|l| l.leg.call_id == cid).unwrap().id;
    let a1 = store.leg(id("a1")).await.unwrap().unwrap();
    assert_eq!(a1.leg.caller, "+49 30 1234567");
    assert!(store.leg(999_999).await.unwrap().is_none());

    let rel = store.related_legs(&a1).await.unwrap();
    let by: Vec<(&str, &Vec<Relation>)> = rel
        .iter()
        .map(|r| (r.leg.leg.call_id.as_str(), &r.relations))
        .collect();
    assert_eq!(
        by.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        ["a2", "b", "c"],
        "{by:?}"
    );
    assert_eq!(by[0].1, &vec![Relation::SameDedupKey]);
    assert!(by[1].1.contains(&Relation::Link {
        link: Link::ReferredBy,
        carried_by_other: true
    }));
    assert!(by[2].1.contains(&Relation::Link {
        link: Link::Replaces,
        carried_by_other: true
    }));
    assert!(by[2].1[0].text().contains("Replaces"));

    // Seen from the new leg, the link is carried by this leg.
    let b = store.leg(id("b")).await.unwrap().unwrap();
    let rel = store.related_legs(&b).await.unwrap();
    let a1_rel = rel.iter().find(|r| r.leg.leg.call_id == "a1").unwrap();
    assert!(a1_rel.relations.contains(&Relation::Link {
        link: Link::ReferredBy,
        carried_by_other: false
    }));
}
