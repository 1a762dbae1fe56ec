-- 0009: API keys expire, remember when they were last used, and are looked up without RLS.
--
-- expires_at: NULL = never. last_used_at: written by the API at most once per key per minute
-- (off the request path), so it is accurate to a minute, not to the request.
ALTER TABLE api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz;

-- A key is verified before its tenant is known, so the API's connections (scoped to a tenant by
-- Row-Level Security) cannot read api_keys for it. These functions run as the table owner and do
-- exactly one thing each. 0010 (RLS) limits EXECUTE to the API's role.

-- The row behind a prefix (revoked and expired rows too: the API answers them differently).
CREATE FUNCTION taskstream_key_by_prefix(key_prefix text)
RETURNS TABLE (
    tenant_id uuid, secret_hash bytea, role text, expires_at timestamptz,
    revoked_at timestamptz, last_used_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT k.tenant_id, k.secret_hash, k.role, k.expires_at, k.revoked_at, k.last_used_at
    FROM public.api_keys k WHERE k.prefix = key_prefix
$$;

-- Prefixes of every key that may still be valid: the API asks for them (at most once a second)
-- only for a client address that is already sending too many wrong keys, to refuse unknown
-- prefixes without a look-up each. Prefixes are the public part of a key.
CREATE FUNCTION taskstream_live_key_prefixes(at timestamptz)
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT k.prefix FROM public.api_keys k
    WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > at)
$$;

-- last_used_at of keys the API verified (key_prefixes[i] used at used_at[i]), in one statement
-- for every tenant they belong to.
CREATE FUNCTION taskstream_touch_keys(key_prefixes text[], used_at timestamptz[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    UPDATE public.api_keys k SET last_used_at = u.at
    FROM unnest(key_prefixes, used_at) AS u (prefix, at)
    WHERE k.prefix = u.prefix AND (k.last_used_at IS NULL OR k.last_used_at < u.at)
$$;
