-- Version 1: the schema of the portal before versioned migrations, unchanged. Every
-- statement is idempotent, so a portal.db made before versions were recorded (tables present,
-- no portal_schema table) is brought to version 1 by running it again. {SERIAL} is the one
-- spelling the engines differ in.
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    role TEXT NOT NULL, customer_id TEXT REFERENCES customers(id), created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS tiers (
    id TEXT PRIMARY KEY, channels BIGINT NOT NULL, price TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    token TEXT NOT NULL UNIQUE, channels BIGINT NOT NULL, formal_end TEXT NOT NULL,
    cancelled BIGINT NOT NULL, trial BIGINT NOT NULL, emergency BIGINT NOT NULL,
    binding_kind TEXT NOT NULL, binding_value TEXT, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS licenses_customer ON licenses (customer_id);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, license_id TEXT NOT NULL REFERENCES licenses(id),
    kind TEXT NOT NULL, tier_id TEXT, channels BIGINT, months BIGINT, status TEXT NOT NULL,
    created_at BIGINT NOT NULL, completed_at BIGINT);
CREATE INDEX IF NOT EXISTS orders_license ON orders (license_id);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, license_id TEXT NOT NULL REFERENCES licenses(id), kind TEXT NOT NULL,
    amount BIGINT NOT NULL, start_day TEXT NOT NULL, end_day TEXT NOT NULL,
    created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_license ON grants (license_id);
CREATE TABLE IF NOT EXISTS checkins (
    license_id TEXT NOT NULL REFERENCES licenses(id), boot_id TEXT NOT NULL,
    hwid TEXT NOT NULL, install_id TEXT NOT NULL, version TEXT NOT NULL,
    first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, PRIMARY KEY (license_id, boot_id));
CREATE TABLE IF NOT EXISTS audit_log (
    seq {SERIAL}, at BIGINT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    license_id TEXT, customer_id TEXT, details TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id TEXT PRIMARY KEY, secret TEXT NOT NULL, public TEXT NOT NULL,
    created_at BIGINT NOT NULL, active BIGINT NOT NULL)
