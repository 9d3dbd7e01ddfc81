//! Alert rules and the alert log on PostgreSQL (see `crate::alerts`).

use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::alerts::{LOG_COLUMNS, LogRow, RULE_COLUMNS, RuleRow, bind_spec};
use crate::{
    AlertLogEntry, AlertOutcome, AlertRule, AlertRuleSpec, AlertRuleState, Micros, Result,
};

pub(crate) async fn list_rules(pool: &PgPool) -> Result<Vec<AlertRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id"
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(RuleRow::into_rule).collect()
}

pub(crate) async fn rule(pool: &PgPool, id: i64) -> Result<Option<AlertRule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(RuleRow::into_rule).transpose()
}

pub(crate) async fn create_rule(pool: &PgPool, spec: &AlertRuleSpec, now: Micros) -> Result<i64> {
    let id: i64 = bind_spec(
        sqlx::query(
            "INSERT INTO alert_rules (name, kind, enabled, threshold_percent, window_minutes, \
             min_calls, webhook_url, email, renotify_minutes, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        ),
        spec,
    )
    .bind(now)
    .fetch_one(pool)
    .await?
    .try_get(0)?;
    Ok(id)
}

pub(crate) async fn update_rule(pool: &PgPool, id: i64, spec: &AlertRuleSpec) -> Result<bool> {
    let done = bind_spec(
        sqlx::query(
            "UPDATE alert_rules SET name = $1, kind = $2, enabled = $3, threshold_percent = $4, \
             window_minutes = $5, min_calls = $6, webhook_url = $7, email = $8, \
             renotify_minutes = $9, firing = FALSE, last_sent_us = NULL, last_value = NULL \
             WHERE id = $10",
        ),
        spec,
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_rule_enabled(pool: &PgPool, id: i64, enabled: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE alert_rules SET enabled = $1 WHERE id = $2")
        .bind(enabled)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_rule(pool: &PgPool, id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_rule_state(pool: &PgPool, id: i64, state: &AlertRuleState) -> Result<()> {
    sqlx::query(
        "UPDATE alert_rules SET firing = $1, last_sent_us = $2, last_value = $3 WHERE id = $4",
    )
    .bind(state.firing)
    .bind(state.last_sent)
    .bind(&state.last_value)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn log_alert(
    pool: &PgPool,
    at: Micros,
    rule_id: Option<i64>,
    rule_name: &str,
    channel: &str,
    what: &str,
    outcome: AlertOutcome,
    detail: Option<&str>,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_log (at_us, rule_id, rule_name, channel, what, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(at)
    .bind(rule_id)
    .bind(rule_name)
    .bind(channel)
    .bind(what)
    .bind(outcome.as_str())
    .bind(detail)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

pub(crate) async fn alert_log(
    pool: &PgPool,
    limit: u32,
    offset: u64,
) -> Result<Vec<AlertLogEntry>> {
    let rows: Vec<LogRow> = sqlx::query_as(&format!(
        "SELECT {LOG_COLUMNS} FROM alert_log ORDER BY id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(i64::from(limit))
    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(LogRow::into_entry).collect()
}

pub(crate) async fn count_alert_log(pool: &PgPool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_log")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
