-- Users of the web GUI and the JSON API (SPEC §5: everything needs a login, passwords
-- hashed). The hash is a PHC string (argon2id), so the algorithm and its parameters travel
-- with each hash and can be raised later without a migration.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT    NOT NULL,
    created_us    BIGINT  NOT NULL
);
