//! Alert rules and the alert log. The store keeps them; deciding when a rule fires and
//! delivering it is the server's alert engine. Like users, these are tiny rows independent of
//! the leg batches, so they live on the read handle (`&self`) and never wait behind an import.

use crate::{Micros, Result, StoreError};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Channels above `threshold_percent` of the effective license limit.
    Channels,
    /// The license state or its date phase changed (and daily while in lockdown).
    License,
    /// Failed calls above `threshold_percent` of the calls that started in the last
    /// `window_minutes`, once there are at least `min_calls`.
    FailedRatio,
    /// A remote sensor reported its spool full (or more than `min_calls` batches waiting,
    /// when that is above 0), or has not been heard from for `window_minutes`: issue 7 wants
    /// a full spool to be an alerted error, never a silent drop.
    Sensor,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Channels => "channels",
            AlertKind::License => "license",
            AlertKind::FailedRatio => "failed_ratio",
            AlertKind::Sensor => "sensor",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        match s {
            "channels" => Some(AlertKind::Channels),
            "license" => Some(AlertKind::License),
            "failed_ratio" => Some(AlertKind::FailedRatio),
            "sensor" => Some(AlertKind::Sensor),
            _ => None,
        }
    }
}

/// What an admin sets on a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRuleSpec {
    pub name: String,
    pub kind: AlertKind,
    pub enabled: bool,
    /// Share of the limit (channels) or failed-call ratio (failed_ratio), in percent.
    pub threshold_percent: f64,
    /// Look-back of the channel peak and the failed-call ratio.
    pub window_minutes: u32,
    /// Fewer calls than this in the window never fire a failed-ratio rule (noise).
    pub min_calls: u32,
    pub webhook_url: Option<String>,
    pub email: Option<String>,
    /// While a rule keeps firing, it is sent again after this many minutes; 0 = never.
    pub renotify_minutes: u32,
}

/// A stored rule with the engine's memory of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub id: i64,
    pub spec: AlertRuleSpec,
    pub created: Micros,
    /// The condition held at the last evaluation (edge trigger).
    pub firing: bool,
    /// When it was last sent (or suppressed), for re-notification.
    pub last_sent: Option<Micros>,
    /// Kind-specific memory: the last license situation seen, for license rules.
    pub last_value: Option<String>,
}

/// The engine's memory of a rule after an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRuleState {
    pub firing: bool,
    pub last_sent: Option<Micros>,
    pub last_value: Option<String>,
}

/// How one would-be delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    Delivered,
    Failed,
    Suppressed,
}

impl AlertOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Delivered => "delivered",
            AlertOutcome::Failed => "failed",
            AlertOutcome::Suppressed => "suppressed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<AlertOutcome> {
        match s {
            "delivered" => Some(AlertOutcome::Delivered),
            "failed" => Some(AlertOutcome::Failed),
            "suppressed" => Some(AlertOutcome::Suppressed),
            _ => None,
        }
    }
}

/// One line of the alert log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLogEntry {
    pub id: i64,
    pub at: Micros,
    pub rule_id: Option<i64>,
    pub rule_name: String,
    /// `webhook`, `email`, or `-` when the rule has no channel.
    pub channel: String,
    pub what: String,
    pub outcome: AlertOutcome,
    /// The error (failed) or the reason (suppressed).
    pub detail: Option<String>,
}

pub(crate) const RULE_COLUMNS: &str = "id, name, kind, enabled, threshold_percent, window_minutes, \
     min_calls, webhook_url, email, renotify_minutes, created_us, firing, last_sent_us, last_value";

/// An `alert_rules` row as both backends select it (`RULE_COLUMNS`); flags decode from
/// SQLite integers and PostgreSQL booleans alike.
#[derive(sqlx::FromRow)]
pub(crate) struct RuleRow {
    id: i64,
    name: String,
    kind: String,
    enabled: bool,
    threshold_percent: f64,
    window_minutes: i64,
    min_calls: i64,
    webhook_url: Option<String>,
    email: Option<String>,
    renotify_minutes: i64,
    created_us: i64,
    firing: bool,
    last_sent_us: Option<i64>,
    last_value: Option<String>,
}

impl RuleRow {
    /// Values the schema allows but a rule cannot hold (an unknown kind, a negative count)
    /// are reported as a corrupt rule.
    pub(crate) fn into_rule(self) -> Result<AlertRule> {
        let id = self.id;
        let corrupt = || StoreError::CorruptAlertRule { rule_id: id };
        let count = |v: i64| u32::try_from(v).map_err(|_| corrupt());
        Ok(AlertRule {
            id: self.id,
            spec: AlertRuleSpec {
                name: self.name,
                kind: AlertKind::parse(&self.kind).ok_or_else(corrupt)?,
                enabled: self.enabled,
                threshold_percent: self.threshold_percent,
                window_minutes: count(self.window_minutes)?,
                min_calls: count(self.min_calls)?,
                webhook_url: self.webhook_url,
                email: self.email,
                renotify_minutes: count(self.renotify_minutes)?,
            },
            created: self.created_us,
            firing: self.firing,
            last_sent: self.last_sent_us,
            last_value: self.last_value,
        })
    }
}

/// An `alert_log` row as both backends select it (`LOG_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    id: i64,
    at_us: i64,
    rule_id: Option<i64>,
    rule_name: String,
    channel: String,
    what: String,
    outcome: String,
    detail: Option<String>,
}

pub(crate) const LOG_COLUMNS: &str =
    "id, at_us, rule_id, rule_name, channel, what, outcome, detail";

impl LogRow {
    pub(crate) fn into_entry(self) -> Result<AlertLogEntry> {
        Ok(AlertLogEntry {
            id: self.id,
            at: self.at_us,
            rule_id: self.rule_id,
            rule_name: self.rule_name,
            channel: self.channel,
            what: self.what,
            outcome: AlertOutcome::parse(&self.outcome)
                .ok_or(StoreError::CorruptAlertLog { entry_id: self.id })?,
            detail: self.detail,
        })
    }
}

pub(crate) async fn list_rules(pool: &sqlx::SqlitePool) -> Result<Vec<AlertRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id"
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(RuleRow::into_rule).collect()
}

pub(crate) async fn rule(pool: &sqlx::SqlitePool, id: i64) -> Result<Option<AlertRule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(RuleRow::into_rule).transpose()
}

type RuleQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>;

/// Binds what an admin sets, in the column order both `create_rule` and `update_rule` use,
/// on either backend.
pub(crate) fn bind_spec<'q, DB>(q: RuleQuery<'q, DB>, spec: &'q AlertRuleSpec) -> RuleQuery<'q, DB>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(spec.enabled)
        .bind(spec.threshold_percent)
        .bind(i64::from(spec.window_minutes))
        .bind(i64::from(spec.min_calls))
        .bind(&spec.webhook_url)
        .bind(&spec.email)
        .bind(i64::from(spec.renotify_minutes))
}

pub(crate) async fn create_rule(
    pool: &sqlx::SqlitePool,
    spec: &AlertRuleSpec,
    now: Micros,
) -> Result<i64> {
    let done = bind_spec(
        sqlx::query(
            "INSERT INTO alert_rules (name, kind, enabled, threshold_percent, window_minutes, \
             min_calls, webhook_url, email, renotify_minutes, created_us) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ),
        spec,
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.last_insert_rowid())
}

/// Replaces what an admin sets. The engine's memory is reset, since the rule may now mean
/// something else: a changed rule that still fires is reported again at once.
pub(crate) async fn update_rule(
    pool: &sqlx::SqlitePool,
    id: i64,
    spec: &AlertRuleSpec,
) -> Result<bool> {
    let done = bind_spec(
        sqlx::query(
            "UPDATE alert_rules SET name = ?, kind = ?, enabled = ?, threshold_percent = ?, \
             window_minutes = ?, min_calls = ?, webhook_url = ?, email = ?, renotify_minutes = ?, \
             firing = 0, last_sent_us = NULL, last_value = NULL WHERE id = ?",
        ),
        spec,
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_rule_enabled(
    pool: &sqlx::SqlitePool,
    id: i64,
    enabled: bool,
) -> Result<bool> {
    let done = sqlx::query("UPDATE alert_rules SET enabled = ? WHERE id = ?")
        .bind(i64::from(enabled))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_rule(pool: &sqlx::SqlitePool, id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM alert_rules WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_rule_state(
    pool: &sqlx::SqlitePool,
    id: i64,
    state: &AlertRuleState,
) -> Result<()> {
    sqlx::query("UPDATE alert_rules SET firing = ?, last_sent_us = ?, last_value = ? WHERE id = ?")
        .bind(i64::from(state.firing))
        .bind(state.last_sent)
        .bind(&state.last_value)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn log_alert(
    pool: &sqlx::SqlitePool,
    at: Micros,
    rule_id: Option<i64>,
    rule_name: &str,
    channel: &str,
    what: &str,
    outcome: AlertOutcome,
    detail: Option<&str>,
) -> Result<i64> {
    let done = sqlx::query(
        "INSERT INTO alert_log (at_us, rule_id, rule_name, channel, what, outcome, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(rule_id)
    .bind(rule_name)
    .bind(channel)
    .bind(what)
    .bind(outcome.as_str())
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(done.last_insert_rowid())
}

/// Newest first (by insertion: the server clock may be set back, the order of writing not).
pub(crate) async fn alert_log(
    pool: &sqlx::SqlitePool,
    limit: u32,
    offset: u64,
) -> Result<Vec<AlertLogEntry>> {
    let rows: Vec<LogRow> = sqlx::query_as(&format!(
        "SELECT {LOG_COLUMNS} FROM alert_log ORDER BY id DESC LIMIT ? OFFSET ?"
    ))
    .bind(i64::from(limit))
    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(LogRow::into_entry).collect()
}

pub(crate) async fn count_alert_log(pool: &sqlx::SqlitePool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_log")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn spec(name: &str) -> AlertRuleSpec {
        AlertRuleSpec {
            name: name.into(),
            kind: AlertKind::FailedRatio,
            enabled: true,
            threshold_percent: 50.0,
            window_minutes: 10,
            min_calls: 3,
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            email: None,
            renotify_minutes: 60,
        }
    }

    #[tokio::test]
    async fn rules_and_their_state_round_trip_and_the_log_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let a = store.create_alert_rule(&spec("a"), 1_000).await.unwrap();
        let b = store.create_alert_rule(&spec("b"), 2_000).await.unwrap();
        let rules = store.alert_rules().await.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].spec, spec("a"));
        assert_eq!((rules[0].firing, rules[0].last_sent), (false, None));

        let st = AlertRuleState {
            firing: true,
            last_sent: Some(5_000),
            last_value: Some("ok".into()),
        };
        store.set_alert_rule_state(a, &st).await.unwrap();
        let r = store.alert_rule(a).await.unwrap().unwrap();
        assert_eq!(
            (r.firing, r.last_sent, r.last_value),
            (true, Some(5_000), Some("ok".into()))
        );

        // Editing a rule forgets the engine state.
        let mut changed = spec("a2");
        changed.kind = AlertKind::Channels;
        changed.email = Some("ops@example.test".into());
        assert!(store.update_alert_rule(a, &changed).await.unwrap());
        let r = store.alert_rule(a).await.unwrap().unwrap();
        assert_eq!(r.spec, changed);
        assert_eq!((r.firing, r.last_sent), (false, None));

        assert!(store.set_alert_rule_enabled(b, false).await.unwrap());
        assert!(!store.alert_rule(b).await.unwrap().unwrap().spec.enabled);
        assert!(store.delete_alert_rule(b).await.unwrap());
        assert!(!store.delete_alert_rule(b).await.unwrap());
        assert!(store.alert_rule(b).await.unwrap().is_none());

        for i in 0..5 {
            store
                .log_alert(
                    i,
                    Some(a),
                    "a2",
                    "webhook",
                    &format!("alert {i}"),
                    AlertOutcome::Delivered,
                    None,
                )
                .await
                .unwrap();
        }
        store
            .log_alert(
                9,
                Some(b),
                "b",
                "email",
                "x",
                AlertOutcome::Suppressed,
                Some("license locked"),
            )
            .await
            .unwrap();
        assert_eq!(store.count_alert_log().await.unwrap(), 6);
        let page = store.alert_log(2, 0).await.unwrap();
        assert_eq!(page[0].outcome, AlertOutcome::Suppressed);
        assert_eq!(page[0].detail.as_deref(), Some("license locked"));
        assert_eq!(page[0].rule_name, "b", "the log outlives its rule");
        assert_eq!(page[1].what, "alert 4");
        let page = store.alert_log(2, 4).await.unwrap();
        assert_eq!(
            page.iter().map(|e| e.what.as_str()).collect::<Vec<_>>(),
            ["alert 1", "alert 0"]
        );
        store.close().await;
    }
}
