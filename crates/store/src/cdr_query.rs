//! The CDR browser's queries: filtered, sorted pages of legs that stay fast at millions of
//! legs, one leg by id, and the legs related to a leg.
//!
//! # Why keyset paging
//! `OFFSET n` makes SQLite step over n rows, so page 10 000 of a 10 M leg table costs seconds.
//! A page here is asked for as "the rows after (or before) this (sort value, id)", which the
//! database answers from an index seek whatever the depth. The id breaks ties, so paging visits
//! every leg exactly once even when many legs share a start or a caller.
//!
//! # What is indexed
//! - sort by start (the default, newest first): `legs_channels (start_us, ...)`; with a sensor
//!   filter `legs_identity (sensor_id, start_us, call_id)`;
//! - the numbers: `legs_caller_seg (id >> 16, caller, start_us)` / `legs_called_seg`, one run
//!   of entries per *segment* of 65 536 consecutive legs, so that new legs land in the newest
//!   segment's few leaves instead of all over the index (migration 0009 says why). A number
//!   lookup seeks once per segment (`(id >> 16) IN (every segment)`, [`SEGMENTS`]).
//! - caller / called *prefix* filters: a range on those indexes (`x >= p AND x < p+U+10FFFF`,
//!   which unlike `LIKE` needs no collation setting to use the index). How a prefix page is
//!   found depends on how many legs match, which is counted first in the number index (cheap:
//!   the index alone, and at most [`NUMBER_INDEX_MAX`] entries):
//!   - few (a whole number, a long prefix): the matching index entries, which carry start and
//!     id, are sorted and only the page's rows are read;
//!   - many (a short prefix): the legs are walked newest first in the start index, which also
//!     holds both numbers, until the page is full: with at least that many matches in the
//!     range, a page is near (unless the matches all lie at the far end of the time range).
//!     SQLite on its own took the number index here, read every match and sorted them: 3 s
//!     for a 50 000-leg prefix at 10 M legs.
//! - sort by caller / called: each segment's run is already in number order, so a page is the
//!   first rows of every segment's run after the cursor, merged (a few statements of
//!   [`MERGE_TERMS`] segments each), then the page's rows.
//! - caller / called *substring* filters, final code, answered: evaluated on the rows the sort
//!   order walks, so they cost a scan until a page is full (fine for common values, slow for a
//!   rare code over a wide time range: narrow the time range).
//! - sort by duration / code: no index, so SQLite sorts the filtered set (top-N, keyset still
//!   exact); fast with a time range or a number filter, seconds over millions of legs.
//!
//! # Counting
//! An exact total of millions of matches costs as much as reading them, so the count stops at
//! [`COUNT_CAP`] and reports "at least". A prefix-only filter is counted by the number index
//! count above, which reads no rows.

use std::collections::HashSet;

use calls::Micros;
use channels::dedup_part;
use channels::explain::{Link, refer_to_replaces, replaces_call_id, uri_user};
use sqlx::Row;

use crate::sqlite::{LEG_COLUMNS, SqliteStore, leg_from_row};
use crate::{LegId, Result, StoredLeg};

/// The count of matching legs stops here (see the module doc).
pub const COUNT_CAP: u64 = 10_000;

/// Up to this many legs matching a number prefix, a page is taken from the number index;
/// beyond, from the start index (see the module doc).
pub const NUMBER_INDEX_MAX: u64 = 5000;

/// Every number-index segment from the lowest leg id's to the highest's, as an `IN` operand
/// (see the module doc; the shift is the one of migration 0009's index expressions).
const SEGMENTS: &str = "(id >> 16) IN (WITH RECURSIVE seg(n) AS ( \
     SELECT (SELECT MIN(id) FROM legs) >> 16 \
     UNION ALL SELECT n + 1 FROM seg WHERE n < (SELECT MAX(id) FROM legs) >> 16) \
     SELECT n FROM seg)";

/// Segments read by one statement of a merged number sort (`UNION ALL` of per-segment
/// terms): few round trips, far below SQLite's limit of 500 terms.
const MERGE_TERMS: usize = 64;

/// Most legs one page may hold, whatever is asked: bounds the work of one request.
pub const MAX_PAGE: u32 = 1000;

/// Legs whose time ranges come this close to a leg's are candidates for "related" (a call seen
/// by another sensor overlaps it; a transfer's new leg starts within seconds of the REFER).
pub const RELATED_MARGIN: Micros = 5 * 60 * 1_000_000;

/// At most this many legs sharing a number are examined for one leg's related legs.
pub const MAX_RELATED_CANDIDATES: usize = 2000;

/// How a caller/called filter matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Match {
    /// The user part starts with the text (uses the index).
    #[default]
    Prefix,
    /// The user part contains the text anywhere (a scan).
    Contains,
}

/// Filters of the CDR list; all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    /// Legs that started at or after this instant.
    pub start_from: Option<Micros>,
    /// Legs that started strictly before this instant.
    pub start_before: Option<Micros>,
    pub caller: Option<String>,
    pub called: Option<String>,
    /// Applies to both `caller` and `called`.
    pub number_match: Match,
    pub sensor_id: Option<u32>,
    /// Final SIP response code (`last_response`).
    pub code: Option<u16>,
    /// Answered (has an answer time) or not.
    pub answered: Option<bool>,
}

/// Sort column of the CDR list. Ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CdrSort {
    #[default]
    Start,
    Duration,
    Caller,
    Called,
    Code,
}

impl CdrSort {
    pub fn as_str(self) -> &'static str {
        match self {
            CdrSort::Start => "start",
            CdrSort::Duration => "duration",
            CdrSort::Caller => "caller",
            CdrSort::Called => "called",
            CdrSort::Code => "code",
        }
    }

    pub fn parse(s: &str) -> Option<CdrSort> {
        [
            CdrSort::Start,
            CdrSort::Duration,
            CdrSort::Caller,
            CdrSort::Called,
            CdrSort::Code,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The SQL expression sorted on. A missing code sorts as 0 so the keyset comparison never
    /// meets NULL.
    fn expr(self) -> &'static str {
        match self {
            CdrSort::Start => "start_us",
            CdrSort::Duration => "(end_us - start_us)",
            CdrSort::Caller => "caller",
            CdrSort::Called => "called",
            CdrSort::Code => "COALESCE(last_response, 0)",
        }
    }

    fn is_text(self) -> bool {
        matches!(self, CdrSort::Caller | CdrSort::Called)
    }
}

/// The sort value of a row in a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

/// A position in a sorted list: the sort value and id of a row. Paging asks for the rows
/// after or before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: SortValue,
    pub id: LegId,
}

impl Cursor {
    /// `<id>.<value>`: the id first so a text value may hold any character, dots included.
    pub fn to_token(&self) -> String {
        match &self.value {
            SortValue::Int(v) => format!("{}.{v}", self.id),
            SortValue::Text(s) => format!("{}.{s}", self.id),
        }
    }

    /// Reads a token made by [`Cursor::to_token`] for `sort`; `None` for anything else (a
    /// cursor comes from a URL, so it may be anything).
    pub fn parse(token: &str, sort: CdrSort) -> Option<Cursor> {
        let (id, value) = token.split_once('.')?;
        let id = id.parse::<LegId>().ok()?;
        let value = if sort.is_text() {
            SortValue::Text(value.to_string())
        } else {
            SortValue::Int(value.parse().ok()?)
        };
        Some(Cursor { value, id })
    }

    fn of(leg: &StoredLeg, sort: CdrSort) -> Cursor {
        let l = &leg.leg;
        let value = match sort {
            CdrSort::Start => SortValue::Int(l.start),
            CdrSort::Duration => SortValue::Int(l.end - l.start),
            CdrSort::Caller => SortValue::Text(l.caller.clone()),
            CdrSort::Called => SortValue::Text(l.called.clone()),
            CdrSort::Code => SortValue::Int(l.last_response.map_or(0, i64::from)),
        };
        Cursor { value, id: leg.id }
    }
}

/// Which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PageAt {
    #[default]
    First,
    /// The rows following this one in the sort order.
    After(Cursor),
    /// The rows preceding this one (the "previous page").
    Before(Cursor),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrQuery {
    pub filter: CdrFilter,
    pub sort: CdrSort,
    /// Descending (the default: newest first).
    pub descending: bool,
    pub page: PageAt,
    /// Rows per page, at most [`MAX_PAGE`].
    pub limit: u32,
    /// Count the matches (up to [`COUNT_CAP`]); off for API clients that only page.
    pub count: bool,
}

impl Default for CdrQuery {
    fn default() -> Self {
        CdrQuery {
            filter: CdrFilter::default(),
            sort: CdrSort::Start,
            descending: true,
            page: PageAt::First,
            limit: 50,
            count: false,
        }
    }
}

/// How many legs match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchCount {
    Exact(u64),
    /// More than [`COUNT_CAP`]; this many at least.
    AtLeast(u64),
}

/// One page of the CDR list.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrPage {
    /// In the requested order; `messages` left empty.
    pub legs: Vec<StoredLeg>,
    /// The cursor for the next page, when there are more rows.
    pub next: Option<Cursor>,
    /// The cursor for the previous page, when there are rows before this page.
    pub prev: Option<Cursor>,
    /// Only when asked for.
    pub count: Option<MatchCount>,
}

/// Why a leg is related to another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    /// Same dedup key: the two are one channel (e.g. one call seen by two sensors).
    SameDedupKey,
    /// A transfer or fork link (the rules of `channels::explain`); `carried_by_other` is true when
    /// the *other* leg carries the header that names this one.
    Link { link: Link, carried_by_other: bool },
}

impl Relation {
    /// Words for the GUI.
    pub fn text(self) -> String {
        match self {
            Relation::SameDedupKey => {
                "same dedup key (the last 6 digits of caller and called): counted as one channel"
                    .into()
            }
            Relation::Link {
                link,
                carried_by_other,
            } => {
                let side = if carried_by_other {
                    "header of the other leg"
                } else {
                    "header of this leg"
                };
                format!("{} ({side})", link.as_str())
            }
        }
    }
}

/// A leg related to another one, with every reason found.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedLeg {
    pub leg: StoredLeg,
    pub relations: Vec<Relation>,
}

#[derive(Clone)]
enum Bind {
    Int(i64),
    Text(String),
}

/// The smallest string greater than every string starting with `p`, in SQLite's binary
/// collation of UTF-8: `p` followed by the highest code point.
fn prefix_end(p: &str) -> String {
    let mut s = p.to_string();
    s.push(char::MAX);
    s
}

/// How a number prefix filter is served (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberPlan {
    /// No prefix filter, or a sort the plan does not apply to: SQLite decides.
    Planner,
    /// From the number index of this column (`caller` or `called`), which holds few matches.
    Index(&'static str),
    /// Walk the start index; the prefix is only checked.
    Scan,
    /// Sorted by this number column: each segment's run of its index, merged.
    Merge(&'static str),
}

/// The prefix filters of `f`: (column, prefix), non-empty ones.
fn prefixes(f: &CdrFilter) -> Vec<(&'static str, &str)> {
    if f.number_match != Match::Prefix {
        return Vec::new();
    }
    [("caller", &f.caller), ("called", &f.called)]
        .into_iter()
        .filter_map(|(col, v)| Some((col, v.as_deref().filter(|v| !v.is_empty())?)))
        .collect()
}

/// Whether `f` holds nothing but number prefixes and a time range, so that the number index
/// alone answers it.
fn only_prefix_and_time(f: &CdrFilter) -> bool {
    f.sensor_id.is_none() && f.code.is_none() && f.answered.is_none()
}

fn where_clause(f: &CdrFilter, plan: NumberPlan, sql: &mut String, binds: &mut Vec<Bind>) {
    sql.push_str(" WHERE 1 = 1");
    match plan {
        NumberPlan::Index(_) => {
            sql.push_str(" AND ");
            sql.push_str(SEGMENTS);
        }
        NumberPlan::Merge(_) => {
            // The first bind: the segment, set per term by `merged_page_ids`.
            sql.push_str(" AND (id >> 16) = ?");
            binds.push(Bind::Int(0));
        }
        NumberPlan::Planner | NumberPlan::Scan => {}
    }
    if let Some(t) = f.start_from {
        sql.push_str(" AND start_us >= ?");
        binds.push(Bind::Int(t));
    }
    if let Some(t) = f.start_before {
        sql.push_str(" AND start_us < ?");
        binds.push(Bind::Int(t));
    }
    for (col, value) in [("caller", &f.caller), ("called", &f.called)] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        match f.number_match {
            Match::Prefix => {
                // A unary `+` keeps SQLite from using the column's index for the term.
                let hint = match plan {
                    NumberPlan::Planner => "",
                    NumberPlan::Index(c) | NumberPlan::Merge(c) if c == col => "",
                    NumberPlan::Index(_) | NumberPlan::Merge(_) | NumberPlan::Scan => "+",
                };
                sql.push_str(&format!(" AND {hint}{col} >= ? AND {hint}{col} < ?"));
                binds.push(Bind::Text(v.to_string()));
                binds.push(Bind::Text(prefix_end(v)));
            }
            Match::Contains => {
                sql.push_str(&format!(" AND instr({col}, ?) > 0"));
                binds.push(Bind::Text(v.to_string()));
            }
        }
    }
    if let Some(s) = f.sensor_id {
        sql.push_str(" AND sensor_id = ?");
        binds.push(Bind::Int(i64::from(s)));
    }
    if let Some(c) = f.code {
        sql.push_str(" AND last_response = ?");
        binds.push(Bind::Int(i64::from(c)));
    }
    match f.answered {
        Some(true) => sql.push_str(" AND answer_us IS NOT NULL"),
        Some(false) => sql.push_str(" AND answer_us IS NULL"),
        None => {}
    }
}

/// `FROM legs`, pinned to the number index for an index plan.
fn from_legs(plan: NumberPlan) -> String {
    match plan {
        NumberPlan::Index(col) | NumberPlan::Merge(col) => {
            format!(" FROM legs INDEXED BY legs_{col}_seg")
        }
        NumberPlan::Planner | NumberPlan::Scan => " FROM legs".to_string(),
    }
}

fn capped(n: u64) -> MatchCount {
    if n > COUNT_CAP {
        MatchCount::AtLeast(COUNT_CAP)
    } else {
        MatchCount::Exact(n)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

impl SqliteStore {
    /// Legs matching the number prefix `prefix` of `col` (and the time range of `f`), counted
    /// in the number index alone, up to `cap + 1`.
    async fn count_in_number_index(
        &self,
        f: &CdrFilter,
        col: &'static str,
        prefix: &str,
        cap: u64,
    ) -> Result<u64> {
        let mut sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM legs INDEXED BY legs_{col}_seg \
             WHERE {SEGMENTS} AND {col} >= ? AND {col} < ?"
        );
        let mut binds = vec![
            Bind::Text(prefix.to_string()),
            Bind::Text(prefix_end(prefix)),
        ];
        if let Some(t) = f.start_from {
            sql.push_str(" AND start_us >= ?");
            binds.push(Bind::Int(t));
        }
        if let Some(t) = f.start_before {
            sql.push_str(" AND start_us < ?");
            binds.push(Bind::Int(t));
        }
        sql.push_str(" LIMIT ?)");
        binds.push(Bind::Int(cap.saturating_add(1).min(i64::MAX as u64) as i64));
        let n: i64 = bind_all(sqlx::query(&sql), &binds)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n.max(0) as u64)
    }

    /// The plan for a query's number prefixes and number sorts, and the legs matching the most
    /// selective prefix when that is known exactly (at most [`NUMBER_INDEX_MAX`]).
    async fn number_plan(&self, q: &CdrQuery) -> Result<(NumberPlan, Option<u64>)> {
        let mut best: Option<(&'static str, u64)> = None;
        for (col, prefix) in prefixes(&q.filter) {
            let n = self
                .count_in_number_index(&q.filter, col, prefix, NUMBER_INDEX_MAX)
                .await?;
            if best.is_none_or(|(_, b)| n < b) {
                best = Some((col, n));
            }
        }
        let sorted_by_number = match q.sort {
            CdrSort::Caller => Some("caller"),
            CdrSort::Called => Some("called"),
            CdrSort::Start | CdrSort::Duration | CdrSort::Code => None,
        };
        Ok(match (best, sorted_by_number) {
            (Some((col, n)), _) if n <= NUMBER_INDEX_MAX => (NumberPlan::Index(col), Some(n)),
            (_, Some(col)) => (NumberPlan::Merge(col), None),
            // Only the start order can stop early; other sorts read every match anyway.
            (Some(_), None) if q.sort == CdrSort::Start => (NumberPlan::Scan, None),
            _ => (NumberPlan::Planner, None),
        })
    }

    /// The ids of a page sorted by a number (`plan` is `Merge`): the first `limit` rows of each
    /// segment's run after the cursor, merged in Rust. `sql` is the filtered query of one
    /// segment, ordered and limited; `binds` are its binds, the first a placeholder for the
    /// segment.
    async fn merged_page_ids(
        &self,
        sql: &str,
        binds: &[Bind],
        desc: bool,
        limit: i64,
    ) -> Result<Vec<LegId>> {
        let (low, high): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(id) FROM legs) >> 16, (SELECT MAX(id) FROM legs) >> 16",
        )
        .fetch_one(&self.pool)
        .await?;
        let (Some(low), Some(high)) = (low, high) else {
            return Ok(Vec::new());
        };
        let mut runs: Vec<(String, LegId)> = Vec::new();
        let segments: Vec<i64> = (low..=high).collect();
        for chunk in segments.chunks(MERGE_TERMS) {
            let term = format!("SELECT * FROM ({sql} LIMIT {limit})");
            let union = vec![term; chunk.len()].join(" UNION ALL ");
            let mut all = Vec::with_capacity(chunk.len() * binds.len());
            for &segment in chunk {
                all.push(Bind::Int(segment));
                all.extend(binds[1..].iter().cloned());
            }
            for row in bind_all(sqlx::query(&union), &all)
                .fetch_all(&self.pool)
                .await?
            {
                runs.push((row.try_get(1)?, row.try_get(0)?));
            }
        }
        runs.sort_unstable();
        if desc {
            runs.reverse();
        }
        runs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(runs.into_iter().map(|(_, id)| id).collect())
    }

    pub(crate) async fn cdr_page(&self, q: &CdrQuery) -> Result<CdrPage> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let expr = q.sort.expr();
        let (plan, matches) = self.number_plan(q).await?;
        // Walking backwards (previous page) reverses the order; the rows are flipped after.
        let backwards = matches!(q.page, PageAt::Before(_));
        let desc = q.descending != backwards;
        let mut sql = String::new();
        let mut binds = Vec::new();
        where_clause(&q.filter, plan, &mut sql, &mut binds);
        if let PageAt::After(c) | PageAt::Before(c) = &q.page {
            // `expr <= v AND (expr < v OR id < i)` rather than a row value: the first term is
            // a plain range the planner seeks with, the second filters the few ties.
            let (le, lt) = if desc { ("<=", "<") } else { (">=", ">") };
            sql.push_str(&format!(
                " AND {expr} {le} ? AND ({expr} {lt} ? OR id {lt} ?)"
            ));
            let v = match (&c.value, q.sort.is_text()) {
                (SortValue::Text(s), true) => Bind::Text(s.clone()),
                (SortValue::Int(i), false) => Bind::Int(*i),
                // A cursor of another sort: start over rather than fail.
                (SortValue::Text(_), false) => Bind::Int(if desc { i64::MAX } else { i64::MIN }),
                (SortValue::Int(_), true) => Bind::Text(if desc {
                    char::MAX.to_string()
                } else {
                    String::new()
                }),
            };
            binds.push(v.clone());
            binds.push(v);
            binds.push(Bind::Int(c.id));
        }
        let dir = if desc { "DESC" } else { "ASC" };
        let order = format!(" ORDER BY {expr} {dir}, id {dir}");
        let columns = LEG_COLUMNS.join(", ");
        let sql = if let NumberPlan::Merge(_) = plan {
            let page = i64::from(limit) + 1;
            let segment_sql = format!("SELECT id, {expr}{}{sql}{order}", from_legs(plan));
            let ids = self
                .merged_page_ids(&segment_sql, &binds, desc, page)
                .await?;
            binds = ids.into_iter().map(Bind::Int).collect();
            let marks = vec!["?"; binds.len()].join(", ");
            format!("SELECT id, {columns} FROM legs WHERE id IN ({marks}){order} LIMIT ?")
        } else if let NumberPlan::Index(_) = plan {
            // The page's ids from the index entries (which hold start and id), then only
            // those rows: SQLite would otherwise read every matching row before sorting.
            format!(
                "SELECT id, {columns} FROM legs WHERE id IN (SELECT id{}{sql}{order} LIMIT ?){order}",
                from_legs(plan)
            )
        } else {
            format!(
                "SELECT id, {columns}{}{sql}{order} LIMIT ?",
                from_legs(plan)
            )
        };
        binds.push(Bind::Int(i64::from(limit) + 1));
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(&self.pool)
            .await?;
        let mut legs = rows.iter().map(leg_from_row).collect::<Result<Vec<_>>>()?;
        let more = legs.len() > limit as usize;
        legs.truncate(limit as usize);
        if backwards {
            legs.reverse();
        }
        let first = legs.first().map(|l| Cursor::of(l, q.sort));
        let last = legs.last().map(|l| Cursor::of(l, q.sort));
        let (prev, next) = match q.page {
            PageAt::First => (None, if more { last } else { None }),
            PageAt::After(_) => (first, if more { last } else { None }),
            PageAt::Before(_) => (if more { first } else { None }, last),
        };
        let count = if q.count {
            Some(self.cdr_count(&q.filter, plan, matches).await?)
        } else {
            None
        };
        Ok(CdrPage {
            legs,
            next,
            prev,
            count,
        })
    }

    /// `matches`: what the plan counted in the number index, if it was exact.
    async fn cdr_count(
        &self,
        f: &CdrFilter,
        plan: NumberPlan,
        matches: Option<u64>,
    ) -> Result<MatchCount> {
        if let [(col, prefix)] = prefixes(f)[..]
            && only_prefix_and_time(f)
        {
            // The number index alone answers a prefix and a time range, reading no rows.
            let n = match matches {
                Some(n) => n,
                None => {
                    self.count_in_number_index(f, col, prefix, COUNT_CAP)
                        .await?
                }
            };
            return Ok(capped(n));
        }
        // A merge plan is per segment; counting needs no order, so the planner chooses.
        let plan = match plan {
            NumberPlan::Merge(_) => NumberPlan::Planner,
            p => p,
        };
        let mut inner = format!("SELECT 1{}", from_legs(plan));
        let mut binds = Vec::new();
        where_clause(f, plan, &mut inner, &mut binds);
        inner.push_str(" LIMIT ?");
        binds.push(Bind::Int(COUNT_CAP as i64 + 1));
        let sql = format!("SELECT COUNT(*) FROM ({inner})");
        let n: i64 = bind_all(sqlx::query(&sql), &binds)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(capped(n.max(0) as u64))
    }

    pub(crate) async fn leg(&self, id: LegId) -> Result<Option<StoredLeg>> {
        let sql = format!(
            "SELECT id, {} FROM legs WHERE id = ?",
            LEG_COLUMNS.join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(leg_from_row).transpose()
    }

    pub(crate) async fn related_legs(&self, of: &StoredLeg) -> Result<Vec<RelatedLeg>> {
        let leg = &of.leg;
        // Candidates: legs overlapping the leg's time range widened by the margin. The start
        // bound lets the planner use the start index; the longest stored leg bounds how early
        // an overlapping leg can have started.
        let longest: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(value), 0) FROM store_meta WHERE name = ?")
                .bind("max_leg_us")
                .fetch_one(&self.pool)
                .await?;
        let from = leg.start.saturating_sub(RELATED_MARGIN);
        let to = leg.end.max(leg.start).saturating_add(RELATED_MARGIN);
        // Stage 1 reads only the covering channel index (no leg rows): every rule relates legs
        // that share a party (same key, or a transfer naming one of the numbers), so legs
        // sharing no dedup part with this one are dropped before their rows are read.
        let window: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, caller, called, start_us FROM legs INDEXED BY legs_channels \
             WHERE start_us >= ? AND start_us < ? AND end_us >= ?",
        )
        .bind(from.saturating_sub(longest.max(0)))
        .bind(to)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        let (tc, td) = parts(leg);
        let mut candidates: Vec<(i64, i64)> = window
            .into_iter()
            .filter(|(id, caller, called, _)| {
                if *id == of.id {
                    return false;
                }
                let (c, d) = (dedup_part(caller), dedup_part(called));
                c == tc || c == td || d == tc || d == td
            })
            .map(|(id, _, _, start)| ((start - leg.start).abs(), id))
            .collect();
        // The nearest in time first, so a number that is party to thousands of calls (a
        // trunk) cannot make the page slow.
        candidates.sort_unstable();
        candidates.truncate(MAX_RELATED_CANDIDATES);
        let mut out = Vec::new();
        for chunk in candidates.chunks(500) {
            let mut sql = format!(
                "SELECT id, {} FROM legs WHERE id IN (",
                LEG_COLUMNS.join(", ")
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
            }
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for (_, id) in chunk {
                query = query.bind(*id);
            }
            for row in &query.fetch_all(&self.pool).await? {
                let other = leg_from_row(row)?;
                let relations = relations(leg, &other.leg);
                if !relations.is_empty() {
                    out.push(RelatedLeg {
                        leg: other,
                        relations,
                    });
                }
            }
        }
        out.sort_by_key(|r| (r.leg.leg.start, r.leg.id));
        Ok(out)
    }
}

/// The dedup parts of a leg's two parties.
fn parts(l: &calls::Leg) -> (String, String) {
    (dedup_part(&l.caller), dedup_part(&l.called))
}

/// The links `carrier`'s headers make to `other`, by the rules of `channels::explain` (see its
/// module doc), applied to one pair instead of every active leg.
fn carried_links(carrier: &calls::Leg, other: &calls::Leg) -> Vec<Link> {
    let (cc, cd) = parts(carrier);
    let (oc, od) = parts(other);
    let mut out = Vec::new();
    if carrier
        .replaces
        .as_deref()
        .and_then(replaces_call_id)
        .is_some_and(|id| id == other.call_id)
    {
        out.push(Link::Replaces);
    }
    if let Some(refer_to) = carrier.refer_to.as_deref() {
        if refer_to_replaces(refer_to).is_some_and(|id| id == other.call_id) {
            out.push(Link::ReferToReplaces);
        }
        if uri_user(refer_to).map(dedup_part).is_some_and(|t| t == od) && (oc == cc || oc == cd) {
            out.push(Link::ReferTo);
        }
    }
    if let Some(r) = carrier
        .referred_by
        .as_deref()
        .and_then(uri_user)
        .map(dedup_part)
        && (r == oc || r == od)
        && (cc == oc || cc == od || cd == oc || cd == od)
    {
        out.push(Link::ReferredBy);
    }
    out
}

/// Every reason `this` and `other` are related; empty when they are not.
pub fn relations(this: &calls::Leg, other: &calls::Leg) -> Vec<Relation> {
    let mut out: Vec<Relation> = Vec::new();
    if parts(this) == parts(other) {
        out.push(Relation::SameDedupKey);
    }
    for link in carried_links(this, other) {
        out.push(Relation::Link {
            link,
            carried_by_other: false,
        });
    }
    for link in carried_links(other, this) {
        out.push(Relation::Link {
            link,
            carried_by_other: true,
        });
    }
    if this.call_id == other.call_id && parts(this).1 != parts(other).1 {
        out.push(Relation::Link {
            link: Link::ForkSameCallId,
            carried_by_other: false,
        });
    }
    if let (Some(a), Some(b)) = (this.from_tag.as_deref(), other.from_tag.as_deref())
        && !a.is_empty()
        && a == b
        && this.call_id != other.call_id
        && parts(this).0 == parts(other).0
    {
        out.push(Relation::Link {
            link: Link::ForkSameFromTag,
            carried_by_other: false,
        });
    }
    let mut seen = HashSet::new();
    out.retain(|r| seen.insert(*r));
    out
}
