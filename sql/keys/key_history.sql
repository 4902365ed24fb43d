-- Every pseudonym key the working store was built with, by fingerprint only (never the key): a run with another
-- key is refused unless it re-keys on purpose (ketreg/registry/key_fingerprint.py).
CREATE SCHEMA IF NOT EXISTS keys;

CREATE TABLE IF NOT EXISTS keys.key_history (
    recorded INTEGER, key_fingerprint VARCHAR, previous_key_fingerprint VARCHAR, rekeyed_at TIMESTAMPTZ
);
