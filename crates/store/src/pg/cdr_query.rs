//! The CDR browser's queries on PostgreSQL: the same filters, sorts, keyset paging and capped
//! counts as `crate::cdr_query`, written for PostgreSQL's planner (no index hints: it picks the
//! number index for a selective prefix by itself). Numbers compare bytewise (`COLLATE "C"`),
//! as in SQLite and as the number indexes are built, so paging order is the same on both.

use channels::dedup_part;
use sqlx::Row;

use super::{LEG_SELECT, PgStore, leg_from_row};
use crate::cdr_query::{MAX_RELATED_CANDIDATES, RELATED_MARGIN};
use crate::{
    COUNT_CAP, CdrFilter, CdrPage, CdrQuery, CdrSort, Cursor, LegId, MAX_PAGE, Match, MatchCount,
    PageAt, RelatedLeg, Result, SortValue, StoredLeg, relations,
};

enum Bind {
    Int(i64),
    Text(String),
}

/// SQL of a sort; a missing code sorts as 0 so that the keyset comparison never meets NULL.
fn sort_expr(sort: CdrSort) -> &'static str {
    match sort {
        CdrSort::Start => "start_us",
        CdrSort::Duration => "(end_us - start_us)",
        CdrSort::Caller => "(caller COLLATE \"C\")",
        CdrSort::Called => "(called COLLATE \"C\")",
        CdrSort::Code => "COALESCE(last_response, 0)",
    }
}

fn text_sort(sort: CdrSort) -> bool {
    matches!(sort, CdrSort::Caller | CdrSort::Called)
}

fn cursor_of(leg: &StoredLeg, sort: CdrSort) -> Cursor {
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

/// Appends `$n` for a new bound value.
fn arg(sql: &mut String, binds: &mut Vec<Bind>, b: Bind) {
    binds.push(b);
    sql.push_str(&format!("${}", binds.len()));
}

fn where_clause(f: &CdrFilter, sql: &mut String, binds: &mut Vec<Bind>) {
    sql.push_str(" WHERE TRUE");
    if let Some(t) = f.start_from {
        sql.push_str(" AND start_us >= ");
        arg(sql, binds, Bind::Int(t));
    }
    if let Some(t) = f.start_before {
        sql.push_str(" AND start_us < ");
        arg(sql, binds, Bind::Int(t));
    }
    for (col, value) in [("caller", &f.caller), ("called", &f.called)] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        match f.number_match {
            Match::Prefix => {
                // A range rather than LIKE: it uses the "C"-collated number index.
                sql.push_str(&format!(" AND {col} COLLATE \"C\" >= "));
                arg(sql, binds, Bind::Text(v.to_string()));
                sql.push_str(&format!(" AND {col} COLLATE \"C\" < "));
                let mut end = v.to_string();
                end.push(char::MAX);
                arg(sql, binds, Bind::Text(end));
            }
            Match::Contains => {
                sql.push_str(&format!(" AND strpos({col}, "));
                arg(sql, binds, Bind::Text(v.to_string()));
                sql.push_str(") > 0");
            }
        }
    }
    if let Some(s) = f.sensor_id {
        sql.push_str(" AND sensor_id = ");
        arg(sql, binds, Bind::Int(i64::from(s)));
    }
    if let Some(c) = f.code {
        sql.push_str(" AND last_response = ");
        arg(sql, binds, Bind::Int(i64::from(c)));
    }
    match f.answered {
        Some(true) => sql.push_str(" AND answer_us IS NOT NULL"),
        Some(false) => sql.push_str(" AND answer_us IS NULL"),
        None => {}
    }
}

fn bind_all<'q>(mut q: super::PgQuery<'q>, binds: &'q [Bind]) -> super::PgQuery<'q> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

impl PgStore {
    pub(crate) async fn cdr_page(&self, q: &CdrQuery) -> Result<CdrPage> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let expr = sort_expr(q.sort);
        let backwards = matches!(q.page, PageAt::Before(_));
        let desc = q.descending != backwards;
        let mut sql = format!("SELECT {LEG_SELECT} FROM legs");
        let mut binds = Vec::new();
        where_clause(&q.filter, &mut sql, &mut binds);
        if let PageAt::After(c) | PageAt::Before(c) = &q.page {
            let (le, lt) = if desc { ("<=", "<") } else { (">=", ">") };
            let value = |b: &mut Vec<Bind>| match (&c.value, text_sort(q.sort)) {
                (SortValue::Text(s), true) => b.push(Bind::Text(s.clone())),
                (SortValue::Int(i), false) => b.push(Bind::Int(*i)),
                // A cursor of another sort: start over rather than fail.
                (SortValue::Text(_), false) => {
                    b.push(Bind::Int(if desc { i64::MAX } else { i64::MIN }))
                }
                (SortValue::Int(_), true) => b.push(Bind::Text(if desc {
                    char::MAX.to_string()
                } else {
                    String::new()
                })),
            };
            value(&mut binds);
            let v1 = binds.len();
            value(&mut binds);
            let v2 = binds.len();
            binds.push(Bind::Int(c.id));
            let id = binds.len();
            sql.push_str(&format!(
                " AND {expr} {le} ${v1} AND ({expr} {lt} ${v2} OR id {lt} ${id})"
            ));
        }
        let dir = if desc { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY {expr} {dir}, id {dir} LIMIT "));
        arg(&mut sql, &mut binds, Bind::Int(i64::from(limit) + 1));
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(&self.pool)
            .await?;
        let mut legs = rows.iter().map(leg_from_row).collect::<Result<Vec<_>>>()?;
        let more = legs.len() > limit as usize;
        legs.truncate(limit as usize);
        if backwards {
            legs.reverse();
        }
        let first = legs.first().map(|l| cursor_of(l, q.sort));
        let last = legs.last().map(|l| cursor_of(l, q.sort));
        let (prev, next) = match q.page {
            PageAt::First => (None, if more { last } else { None }),
            PageAt::After(_) => (first, if more { last } else { None }),
            PageAt::Before(_) => (if more { first } else { None }, last),
        };
        let count = if q.count {
            Some(self.cdr_count(&q.filter).await?)
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

    /// Matches up to [`COUNT_CAP`], then "at least".
    async fn cdr_count(&self, f: &CdrFilter) -> Result<MatchCount> {
        let mut inner = String::from("SELECT 1 FROM legs");
        let mut binds = Vec::new();
        where_clause(f, &mut inner, &mut binds);
        inner.push_str(" LIMIT ");
        arg(&mut inner, &mut binds, Bind::Int(COUNT_CAP as i64 + 1));
        let sql = format!("SELECT COUNT(*) FROM ({inner}) matches");
        let n: i64 = bind_all(sqlx::query(&sql), &binds)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let n = n.max(0) as u64;
        Ok(if n > COUNT_CAP {
            MatchCount::AtLeast(COUNT_CAP)
        } else {
            MatchCount::Exact(n)
        })
    }

    pub(crate) async fn leg(&self, id: LegId) -> Result<Option<StoredLeg>> {
        let row = sqlx::query(&format!("SELECT {LEG_SELECT} FROM legs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(leg_from_row).transpose()
    }

    /// Same candidates and rules as on SQLite: legs near in time that share a dedup part with
    /// this one (read from the covering index first), the nearest first, judged by
    /// [`relations`].
    pub(crate) async fn related_legs(&self, of: &StoredLeg) -> Result<Vec<RelatedLeg>> {
        let leg = &of.leg;
        let longest: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(value), 0) FROM store_meta WHERE name = 'max_leg_us'",
        )
        .fetch_one(&self.pool)
        .await?;
        let from = leg.start.saturating_sub(RELATED_MARGIN);
        let to = leg.end.max(leg.start).saturating_add(RELATED_MARGIN);
        let window: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, caller, called, start_us FROM legs \
             WHERE start_us >= $1 AND start_us < $2 AND end_us >= $3",
        )
        .bind(from.saturating_sub(longest.max(0)))
        .bind(to)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        let (tc, td) = (dedup_part(&leg.caller), dedup_part(&leg.called));
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
        candidates.sort_unstable();
        candidates.truncate(MAX_RELATED_CANDIDATES);
        let ids: Vec<i64> = candidates.iter().map(|c| c.1).collect();
        let rows = sqlx::query(&format!("SELECT {LEG_SELECT} FROM legs WHERE id = ANY($1)"))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let other = leg_from_row(row)?;
            let relations = relations(leg, &other.leg);
            if !relations.is_empty() {
                out.push(RelatedLeg {
                    leg: other,
                    relations,
                });
            }
        }
        out.sort_by_key(|r| (r.leg.leg.start, r.leg.id));
        Ok(out)
    }
}
