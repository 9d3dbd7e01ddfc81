-- Alert rules of kind `sensor` (see ../sqlite/0008_sensor_alerts.sql).
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('channels', 'license', 'failed_ratio', 'sensor'));
