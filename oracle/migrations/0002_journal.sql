-- The submitter's journal: every transaction is recorded here, with its bytes, before it is sent,
-- so that after a crash it can be found on-chain, rebroadcast, or safely replaced.
CREATE TABLE submissions (
    epoch BIGINT NOT NULL,
    kind TEXT NOT NULL,
    round BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    signature TEXT NOT NULL,
    last_valid_block_height BIGINT NOT NULL,
    tx BYTEA NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (epoch, kind, round)
);
