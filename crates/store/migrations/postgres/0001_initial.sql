-- Initial schema: sensors, CDR legs and their SIP messages (PostgreSQL counterpart of
-- ../sqlite/0001_initial.sql: same tables and meaning, so `schema_version` agrees).
--
-- Differences forced by PostgreSQL (and one for speed, see sensor_id): `legs` is
-- partitioned by day on start_us (RANGE), and a unique key of a partitioned table must contain the partition key. So `id` comes from a
-- sequence and is indexed but not a primary key, and `leg_messages` cannot hold a foreign key
-- to it: a trigger deletes the messages with their leg instead. Partitions are created by the
-- insert path for the days a batch touches.

CREATE TABLE sensors (
    id         BIGINT  PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_us BIGINT  NOT NULL
);

INSERT INTO sensors (id, name, created_us)
VALUES (1, 'local', (EXTRACT(EPOCH FROM now()) * 1000000)::BIGINT);

CREATE SEQUENCE legs_id_seq AS BIGINT;

CREATE TABLE legs (
    id                 BIGINT  NOT NULL DEFAULT nextval('legs_id_seq'),
    -- No foreign key to sensors, unlike SQLite: its per-row check (and row lock on the
    -- sensor) cost a quarter of the insert time, and the insert transaction registers every
    -- sensor id of its batch first anyway. Sensor rows are never deleted (revoking keeps them).
    sensor_id          BIGINT  NOT NULL,
    call_id            TEXT    NOT NULL,
    caller             TEXT    NOT NULL,
    caller_domain      TEXT    NOT NULL,
    caller_name        TEXT,
    called             TEXT    NOT NULL,
    called_domain      TEXT    NOT NULL,
    called_name        TEXT,
    from_tag           TEXT,
    to_tag             TEXT,
    start_us           BIGINT  NOT NULL,
    answer_us          BIGINT,
    end_us             BIGINT  NOT NULL,
    last_response      INTEGER,
    last_response_text TEXT,
    end_reason         TEXT    NOT NULL,
    hangup_by          TEXT,
    transport          TEXT    NOT NULL,
    src_ip             TEXT    NOT NULL,
    src_port           INTEGER NOT NULL,
    dst_ip             TEXT    NOT NULL,
    dst_port           INTEGER NOT NULL,
    partial            BOOLEAN NOT NULL,
    referred_by        TEXT,
    refer_to           TEXT,
    replaces           TEXT,
    user_agent         TEXT,
    sip_message_count  BIGINT  NOT NULL,
    CONSTRAINT legs_identity UNIQUE (sensor_id, start_us, call_id)
) PARTITION BY RANGE (start_us);

ALTER SEQUENCE legs_id_seq OWNED BY legs.id;

CREATE INDEX legs_id ON legs (id);
CREATE INDEX legs_start_us ON legs (start_us);
CREATE INDEX legs_end_us ON legs (end_us);
CREATE INDEX legs_caller ON legs (caller);
CREATE INDEX legs_called ON legs (called);

CREATE TABLE leg_messages (
    leg_id        BIGINT  PRIMARY KEY,
    message_count BIGINT  NOT NULL,
    data          BYTEA   NOT NULL
);

CREATE FUNCTION legs_deleted_drop_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leg_messages WHERE leg_id = OLD.id;
    RETURN NULL;
END $$;

CREATE TRIGGER legs_deleted_drop_messages AFTER DELETE ON legs
FOR EACH ROW EXECUTE FUNCTION legs_deleted_drop_messages();
