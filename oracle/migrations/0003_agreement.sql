-- Agreement on each epoch's input (docs/agreement.md).

-- A session is one node serving one client: receipts are keyed by node as well.
ALTER TABLE receipts ADD COLUMN node BYTEA;
UPDATE receipts SET node = substr(signed, 25, 32);
ALTER TABLE equivocations ADD COLUMN node BYTEA;
UPDATE equivocations SET node = substr(signed, 25, 32);

-- The epoch whose agreed input first held a binding or grant (NULL: in none yet).
ALTER TABLE bindings ADD COLUMN position BIGINT;
ALTER TABLE grants ADD COLUMN position BIGINT;

-- The agreed input a dataset was closed over.
ALTER TABLE epochs ADD COLUMN input_hash BYTEA;

-- Every valid manifest seen for an epoch: this oracle's and its peers'.
CREATE TABLE manifests (
    epoch BIGINT NOT NULL,
    oracle BYTEA NOT NULL,
    input_hash BYTEA NOT NULL,
    signed BYTEA NOT NULL,
    PRIMARY KEY (epoch, oracle, input_hash)
);
