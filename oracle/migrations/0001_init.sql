-- Backhaul oracle schema. The same file runs on SQLite and PostgreSQL.

-- Node bindings, all of them: an epoch's close picks the latest applicable one.
CREATE TABLE bindings (
    body_hash BYTEA PRIMARY KEY,
    node BYTEA NOT NULL,
    operator BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    signed BYTEA NOT NULL
);

-- Client grants, all of them: an epoch's close picks the latest applicable one.
CREATE TABLE grants (
    body_hash BYTEA PRIMARY KEY,
    client BYTEA NOT NULL,
    buyer BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    credit_limit BIGINT NOT NULL,
    signed BYTEA NOT NULL
);

-- The receipts at each session's highest sequence (several when the session equivocates).
CREATE TABLE receipts (
    epoch BIGINT NOT NULL,
    client BYTEA NOT NULL,
    session_id BYTEA NOT NULL,
    body_hash BYTEA NOT NULL,
    sequence BIGINT NOT NULL,
    signed BYTEA NOT NULL,
    PRIMARY KEY (epoch, client, session_id, body_hash)
);

-- Evidence: every receipt that took part in an equivocation, kept even once superseded.
CREATE TABLE equivocations (
    epoch BIGINT NOT NULL,
    client BYTEA NOT NULL,
    session_id BYTEA NOT NULL,
    body_hash BYTEA NOT NULL,
    sequence BIGINT NOT NULL,
    signed BYTEA NOT NULL,
    PRIMARY KEY (epoch, client, session_id, body_hash)
);

-- Closed epochs and their datasets.
CREATE TABLE epochs (
    epoch BIGINT PRIMARY KEY,
    dataset BYTEA NOT NULL,
    dataset_hash BYTEA NOT NULL,
    closed_at BIGINT NOT NULL
);
