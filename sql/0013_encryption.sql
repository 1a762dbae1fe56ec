-- 0013: payloads and results sealed at rest (core/crypto.py).
--
-- A sealed value stays in its jsonb column as a JSON string (base64 of nonce and ciphertext);
-- the key id it was sealed with sits next to it. NULL: the value is clear (written before
-- TASKSTREAM_ENCRYPTION_KEYS was set). Adding nullable columns rewrites nothing.
ALTER TABLE tasks ADD COLUMN payload_key text, ADD COLUMN result_key text;
