-- registry.pseudonym_key: the fingerprint of the key the registry's pseudonyms were made with (never the key),
-- and the one it replaced when the registry was re-keyed; one row, read by analysts and release manifests.
CREATE OR REPLACE TABLE registry.pseudonym_key AS
SELECT
    key_fingerprint,
    previous_key_fingerprint AS rekeyed_from,
    rekeyed_at
FROM keys.key_history
ORDER BY recorded DESC
LIMIT 1;
