"""The database interface FreeRADIUS uses: schema `radius`, installed once per database.

FreeRADIUS connects as its own role (`RADIUS_DB_USER`, default `isp_radius`), which may use
the schema and EXECUTE the five functions below - nothing else: no table of any tenant, not
the sealing key, not `radius.reveal`. The functions are SECURITY DEFINER; each takes the tenant
schema that FreeRADIUS got from the NAS directory (`%{Client-Shortname}`), checks it is an
active tenant and quotes it as an identifier, so a request can only reach the tenant of the NAS
it came from.

- `radius.nas_client(src)`: the dynamic-client lookup (NAS source IP -> secret, tenant).
- `radius.authorize_check(tenant, user)`, `radius.authorize_reply(tenant, user)`: the rows
  rlm_sql expects (id, username, attribute, value, op), computed from the subscription, plan,
  PPPoE account and the tenant's RADIUS settings.
- `radius.simul_count(tenant, user)`: open sessions, for Simultaneous-Use.
- `radius.accounting(tenant, status, ...)`: Start / Interim-Update / Stop / Accounting-On/Off
  as an idempotent upsert by Acct-Unique-Session-Id (a replayed record changes nothing).

Secrets FreeRADIUS must see in clear (PPPoE passwords for CHAP, NAS secrets) are stored sealed
(AES-256-CBC + HMAC-SHA256, encrypt-then-MAC, pgcrypto) with a key that lives in
`radius.sealing_key`, readable by no role but the owner of the schema. The back office seals
with `radius.seal()` and never reads a password back.

A trigger function, `radius.session_usage()`, turns every increase of a session's octet
counters into the day's usage row of the subscription (`billing_usagerecord`, the table
billing's usage selector reads), in the tenant's time zone.

`radius.nas_directory` and `radius.subscriber` hold rows of every tenant: they carry row-level
security (tenants.isolation, installed at the end of `radius_interface_install()`), so SQL that
runs as a tenant's restricted role sees that tenant's rows only. The functions above are owned by
the installing role (the tables' owner), which RLS does not restrict: FreeRADIUS's path is unchanged.

Everything here is idempotent (CREATE ... IF NOT EXISTS / OR REPLACE)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from psycopg import sql

INSTALL_SQL = r"""
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
CREATE SCHEMA IF NOT EXISTS radius;
REVOKE ALL ON SCHEMA radius FROM PUBLIC;

CREATE TABLE IF NOT EXISTS radius.sealing_key (
    id integer PRIMARY KEY CHECK (id = 1),
    enc_key bytea NOT NULL CHECK (octet_length(enc_key) = 32),
    mac_key bytea NOT NULL CHECK (octet_length(mac_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO radius.sealing_key (id, enc_key, mac_key)
VALUES (1, public.gen_random_bytes(32), public.gen_random_bytes(32))
ON CONFLICT (id) DO NOTHING;
REVOKE ALL ON radius.sealing_key FROM PUBLIC;

-- NAS source IP -> tenant. One IP belongs to one tenant on the whole platform.
CREATE TABLE IF NOT EXISTS radius.nas_directory (
    ip inet PRIMARY KEY,
    tenant text NOT NULL,
    nas_id bigint NOT NULL,
    secret bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, nas_id)
);
REVOKE ALL ON radius.nas_directory FROM PUBLIC;

CREATE OR REPLACE FUNCTION radius.seal(plaintext text) RETURNS bytea
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    k radius.sealing_key;
    iv bytea := public.gen_random_bytes(16);
    body bytea;
BEGIN
    IF plaintext IS NULL OR plaintext = '' THEN
        RAISE EXCEPTION 'radius.seal: empty secret' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO STRICT k FROM radius.sealing_key WHERE id = 1;
    body := '\x5231'::bytea || iv
        || public.encrypt_iv(convert_to(plaintext, 'UTF8'), k.enc_key, iv, 'aes-cbc/pad:pkcs');
    RETURN body || public.hmac(body, k.mac_key, 'sha256');
END $fn$;

CREATE OR REPLACE FUNCTION radius.reveal(blob bytea) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    k radius.sealing_key;
    n integer := octet_length(blob);
    body bytea;
BEGIN
    IF n < 2 + 16 + 16 + 32 OR substring(blob FROM 1 FOR 2) <> '\x5231'::bytea THEN
        RAISE EXCEPTION 'radius.reveal: not a sealed secret' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO STRICT k FROM radius.sealing_key WHERE id = 1;
    body := substring(blob FROM 1 FOR n - 32);
    IF public.hmac(body, k.mac_key, 'sha256') <> substring(blob FROM n - 31) THEN
        RAISE EXCEPTION 'radius.reveal: sealed secret failed authentication' USING ERRCODE = '22023';
    END IF;
    RETURN convert_from(
        public.decrypt_iv(substring(body FROM 19), k.enc_key, substring(body FROM 3 FOR 16), 'aes-cbc/pad:pkcs'),
        'UTF8');
END $fn$;

CREATE OR REPLACE FUNCTION radius.tenant_ok(p_tenant text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
    SELECT EXISTS (SELECT 1 FROM public.tenants_tenant
                   WHERE schema_name = p_tenant AND status = 'active' AND schema_name <> 'public');
$fn$;

CREATE OR REPLACE FUNCTION radius.nas_client(p_src text)
RETURNS TABLE (secret text, tenant text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    src inet;
BEGIN
    BEGIN
        src := p_src::inet;
    EXCEPTION WHEN others THEN
        RETURN;
    END;
    RETURN QUERY
        SELECT radius.reveal(d.secret), d.tenant
        FROM radius.nas_directory d
        WHERE d.ip = src AND radius.tenant_ok(d.tenant);
END $fn$;

CREATE OR REPLACE FUNCTION radius.compute_check(p_tenant text, p_username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    acc record;
BEGIN
    IF NOT radius.tenant_ok(p_tenant) THEN
        RETURN;
    END IF;
    EXECUTE format(
        'SELECT a.id, a.username, a.secret_sealed, a.simultaneous_use, s.status, st.suspended_access '
        'FROM %1$I.network_pppoeaccount a '
        'JOIN %1$I.customers_subscription s ON s.id = a.subscription_id '
        'CROSS JOIN %1$I.network_radiussettings st '
        'WHERE a.username = $1 AND st.id = 1', p_tenant)
        INTO acc USING p_username;
    IF acc.id IS NULL THEN
        RETURN;  -- unknown user: no rows, rlm_sql says notfound, the request is rejected
    END IF;
    id := acc.id; username := acc.username; op := ':=';
    IF NOT (acc.status = 'active' OR (acc.status = 'suspended' AND acc.suspended_access = 'walled_garden')) THEN
        attribute := 'Auth-Type'; value := 'Reject'; RETURN NEXT;
    END IF;
END $fn$;

CREATE OR REPLACE FUNCTION radius.compute_reply(p_tenant text, p_username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    r record;
    down_kbps bigint;
    up_kbps bigint;
    pool text;
BEGIN
    IF NOT radius.tenant_ok(p_tenant) THEN
        RETURN;
    END IF;
    EXECUTE format(
        'SELECT a.id, a.username, host(a.static_ip) AS static_ip, a.over_cap, s.status, '
        '       p.download_kbps, p.upload_kbps, p.fair_use_download_kbps, p.fair_use_upload_kbps, '
        '       pr.session_timeout_s AS plan_timeout, pr.framed_pool AS plan_pool, '
        '       st.suspended_access, st.walled_garden_pool, st.walled_garden_kbps, st.default_pool, '
        '       st.session_timeout_s, st.interim_interval_s '
        'FROM %1$I.network_pppoeaccount a '
        'JOIN %1$I.customers_subscription s ON s.id = a.subscription_id '
        'JOIN %1$I.customers_plan p ON p.id = s.plan_id '
        'LEFT JOIN %1$I.network_planradiusprofile pr ON pr.plan_id = p.id '
        'CROSS JOIN %1$I.network_radiussettings st '
        'WHERE a.username = $1 AND st.id = 1', p_tenant)
        INTO r USING p_username;
    IF r.id IS NULL THEN
        RETURN;
    END IF;
    id := r.id; username := r.username; op := ':=';
    IF r.status = 'suspended' THEN
        IF r.suspended_access <> 'walled_garden' THEN
            RETURN;
        END IF;
        attribute := 'Framed-Pool'; value := r.walled_garden_pool; RETURN NEXT;
        down_kbps := r.walled_garden_kbps; up_kbps := r.walled_garden_kbps;
        attribute := 'Reply-Message'; value := 'Service suspended: please settle your account'; RETURN NEXT;
    ELSE
        IF r.over_cap AND r.fair_use_download_kbps IS NOT NULL THEN
            down_kbps := r.fair_use_download_kbps; up_kbps := r.fair_use_upload_kbps;
        ELSE
            down_kbps := r.download_kbps; up_kbps := r.upload_kbps;
        END IF;
        IF r.static_ip IS NOT NULL THEN
            attribute := 'Framed-IP-Address'; value := r.static_ip; RETURN NEXT;
        ELSE
            pool := COALESCE(NULLIF(r.plan_pool, ''), NULLIF(r.default_pool, ''));
            IF pool IS NOT NULL THEN
                attribute := 'Framed-Pool'; value := pool; RETURN NEXT;
            END IF;
        END IF;
    END IF;
    -- MikroTik reads rx/tx from the router's side: rx = what the subscriber sends (upload).
    attribute := 'Mikrotik-Rate-Limit'; value := up_kbps || 'k/' || down_kbps || 'k'; RETURN NEXT;
    attribute := 'WISPr-Bandwidth-Max-Down'; value := (down_kbps * 1000)::text; RETURN NEXT;
    attribute := 'WISPr-Bandwidth-Max-Up'; value := (up_kbps * 1000)::text; RETURN NEXT;
    attribute := 'Session-Timeout'; value := COALESCE(r.plan_timeout, r.session_timeout_s)::text; RETURN NEXT;
    attribute := 'Acct-Interim-Interval'; value := r.interim_interval_s::text; RETURN NEXT;
END $fn$;

-- The hot path: one row per PPPoE account with everything an Access-Request needs, kept in
-- step by triggers on the tenant tables (radius.subscriber_sync); FreeRADIUS's queries are
-- primary-key lookups with cached plans instead of per-request joins.
CREATE TABLE IF NOT EXISTS radius.subscriber (
    tenant text NOT NULL,
    username text NOT NULL,
    secret bytea NOT NULL,
    check_attr text[] NOT NULL,
    check_val text[] NOT NULL,
    reply_attr text[] NOT NULL,
    reply_val text[] NOT NULL,
    open_sessions integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, username)
);
-- Simultaneous-Use is decided in the check query (one statement per login, not two).
ALTER TABLE radius.subscriber ADD COLUMN IF NOT EXISTS max_sessions integer NOT NULL DEFAULT 1;
REVOKE ALL ON radius.subscriber FROM PUBLIC;

CREATE OR REPLACE FUNCTION radius.subscriber_refresh(p_tenant text, p_username text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    sealed bytea;
    max_sessions integer;
    sessions integer;
    ca text[];
    cv text[];
    ra text[];
    rv text[];
BEGIN
    EXECUTE format('SELECT secret_sealed, simultaneous_use FROM %I.network_pppoeaccount WHERE username = $1', p_tenant)
        INTO sealed, max_sessions USING p_username;
    IF sealed IS NULL THEN
        DELETE FROM radius.subscriber WHERE tenant = p_tenant AND username = p_username;
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I.network_radiussession WHERE username = $1 AND stop_time IS NULL', p_tenant)
        INTO sessions USING p_username;
    SELECT COALESCE(array_agg(c.attribute ORDER BY c.attribute), '{}'),
           COALESCE(array_agg(c.value ORDER BY c.attribute), '{}')
        INTO ca, cv FROM radius.compute_check(p_tenant, p_username) c;
    SELECT COALESCE(array_agg(r.attribute), '{}'), COALESCE(array_agg(r.value), '{}')
        INTO ra, rv FROM radius.compute_reply(p_tenant, p_username) r;
    INSERT INTO radius.subscriber AS s (tenant, username, secret, check_attr, check_val, reply_attr, reply_val,
                                        max_sessions, open_sessions, updated_at)
    VALUES (p_tenant, p_username, sealed, ca, cv, ra, rv, max_sessions, sessions, now())
    ON CONFLICT (tenant, username) DO UPDATE SET
        secret = EXCLUDED.secret, check_attr = EXCLUDED.check_attr, check_val = EXCLUDED.check_val,
        reply_attr = EXCLUDED.reply_attr, reply_val = EXCLUDED.reply_val,
        max_sessions = EXCLUDED.max_sessions, open_sessions = EXCLUDED.open_sessions, updated_at = now();
END $fn$;

CREATE OR REPLACE FUNCTION radius.subscriber_refresh_tenant(p_tenant text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    u text;
    n integer := 0;
BEGIN
    DELETE FROM radius.subscriber WHERE tenant = p_tenant;
    FOR u IN EXECUTE format('SELECT username FROM %I.network_pppoeaccount ORDER BY id', p_tenant) LOOP
        PERFORM radius.subscriber_refresh(p_tenant, u);
        n := n + 1;
    END LOOP;
    RETURN n;
END $fn$;

-- Trigger function on the tenant tables whose rows decide a reply: refresh the accounts they touch.
CREATE OR REPLACE FUNCTION radius.subscriber_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    t text := TG_TABLE_SCHEMA;
    u text;
    plan bigint;
    rec record;
BEGIN
    rec := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    IF TG_TABLE_NAME = 'network_pppoeaccount' THEN
        IF TG_OP = 'UPDATE' AND OLD.username <> NEW.username THEN
            DELETE FROM radius.subscriber WHERE tenant = t AND username = OLD.username;
        END IF;
        IF TG_OP = 'DELETE' THEN
            DELETE FROM radius.subscriber WHERE tenant = t AND username = OLD.username;
        ELSE
            PERFORM radius.subscriber_refresh(t, NEW.username);
        END IF;
    ELSIF TG_TABLE_NAME = 'customers_subscription' THEN
        FOR u IN EXECUTE format('SELECT username FROM %I.network_pppoeaccount WHERE subscription_id = $1', t)
            USING rec.id LOOP
            PERFORM radius.subscriber_refresh(t, u);
        END LOOP;
    ELSIF TG_TABLE_NAME IN ('customers_plan', 'network_planradiusprofile') THEN
        -- (two branches: a record field that the row type lacks is an error even in a CASE arm)
        IF TG_TABLE_NAME = 'customers_plan' THEN
            plan := rec.id;
        ELSE
            plan := rec.plan_id;
        END IF;
        FOR u IN EXECUTE format(
            'SELECT a.username FROM %1$I.network_pppoeaccount a JOIN %1$I.customers_subscription s '
            'ON s.id = a.subscription_id WHERE s.plan_id = $1', t)
            USING plan LOOP
            PERFORM radius.subscriber_refresh(t, u);
        END LOOP;
    ELSIF TG_TABLE_NAME = 'network_radiussettings' THEN
        PERFORM radius.subscriber_refresh_tenant(t);
    END IF;
    RETURN NULL;
END $fn$;

-- Open sessions per account, for Simultaneous-Use without counting sessions on every request.
CREATE OR REPLACE FUNCTION radius.session_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    delta integer := 0;
    u text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        delta := CASE WHEN NEW.stop_time IS NULL THEN 1 ELSE 0 END; u := NEW.username;
    ELSIF TG_OP = 'DELETE' THEN
        delta := CASE WHEN OLD.stop_time IS NULL THEN -1 ELSE 0 END; u := OLD.username;
    ELSE
        delta := (CASE WHEN NEW.stop_time IS NULL THEN 1 ELSE 0 END)
               - (CASE WHEN OLD.stop_time IS NULL THEN 1 ELSE 0 END);
        u := NEW.username;
    END IF;
    IF delta <> 0 THEN
        UPDATE radius.subscriber SET open_sessions = GREATEST(open_sessions + delta, 0)
        WHERE tenant = TG_TABLE_SCHEMA AND username = u;
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION radius.authorize_check(p_tenant text, p_username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    RETURN QUERY
        SELECT 1::bigint, s.username, 'Cleartext-Password'::text, radius.reveal(s.secret), ':='::text
        FROM radius.subscriber s WHERE s.tenant = p_tenant AND s.username = p_username
        UNION ALL
        SELECT 1::bigint, s.username, c.a, c.v, ':='::text
        FROM radius.subscriber s CROSS JOIN LATERAL unnest(s.check_attr, s.check_val) AS c(a, v)
        WHERE s.tenant = p_tenant AND s.username = p_username
        UNION ALL
        -- Simultaneous-Use: as many open sessions as allowed already -> reject this one.
        SELECT 1::bigint, s.username, 'Auth-Type'::text, 'Reject'::text, ':='::text
        FROM radius.subscriber s
        WHERE s.tenant = p_tenant AND s.username = p_username AND s.open_sessions >= s.max_sessions
          AND NOT ('Auth-Type' = ANY (s.check_attr));
END $fn$;

CREATE OR REPLACE FUNCTION radius.authorize_reply(p_tenant text, p_username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    RETURN QUERY
        SELECT 1::bigint, s.username, r.a, r.v, ':='::text
        FROM radius.subscriber s CROSS JOIN LATERAL unnest(s.reply_attr, s.reply_val) WITH ORDINALITY AS r(a, v, n)
        WHERE s.tenant = p_tenant AND s.username = p_username
        ORDER BY r.n;
END $fn$;

CREATE OR REPLACE FUNCTION radius.simul_count(p_tenant text, p_username text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    RETURN COALESCE((SELECT s.open_sessions FROM radius.subscriber s
                     WHERE s.tenant = p_tenant AND s.username = p_username), 0);
END $fn$;

CREATE OR REPLACE FUNCTION radius.to_bigint(p text) RETURNS bigint
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS $fn$
    SELECT CASE WHEN p ~ '^[0-9]{1,18}$' THEN p::bigint ELSE 0 END;
$fn$;

-- Accounting and its triggers run static SQL under the tenant's search_path (set for the call
-- only): PL/pgSQL caches their plans per schema, where EXECUTE would plan every record again.
CREATE OR REPLACE FUNCTION radius.accounting(
    p_tenant text, p_status text, p_unique_id text, p_session_id text, p_username text,
    p_nas_ip text, p_nas_port_id text, p_nas_port_type text, p_framed_ip text,
    p_calling_station_id text, p_called_station_id text, p_session_time text,
    p_input_octets text, p_input_gigawords text, p_output_octets text, p_output_gigawords text,
    p_terminate_cause text, p_event_time text
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
#variable_conflict use_column
DECLARE
    ev timestamptz;
    nas inet;
    framed inet;
    secs bigint := radius.to_bigint(p_session_time);
    in_octets bigint := (radius.to_bigint(p_input_gigawords) << 32) + radius.to_bigint(p_input_octets);
    out_octets bigint := (radius.to_bigint(p_output_gigawords) << 32) + radius.to_bigint(p_output_octets);
    is_stop boolean := p_status = 'Stop';
    n integer;
BEGIN
    IF p_tenant IS NULL OR p_tenant = '' OR to_regnamespace(quote_ident(p_tenant)) IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('search_path', quote_ident(p_tenant) || ', pg_catalog, pg_temp', true);
    ev := CASE WHEN p_event_time ~ '^[0-9]{9,11}$' THEN to_timestamp(p_event_time::bigint) ELSE now() END;
    BEGIN
        nas := p_nas_ip::inet;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'radius.accounting: NAS-IP-Address % is not an address', p_nas_ip USING ERRCODE = '22023';
    END;
    IF p_status IN ('Accounting-On', 'Accounting-Off') THEN
        -- The NAS (re)started: none of its sessions survive.
        UPDATE network_radiussession
        SET stop_time = GREATEST(update_time, ev), update_time = GREATEST(update_time, ev),
            terminate_cause = 'NAS-Reboot'
        WHERE nas_ip_address = nas AND stop_time IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN GREATEST(n, 1);
    END IF;
    IF p_status NOT IN ('Start', 'Interim-Update', 'Alive', 'Stop') OR p_unique_id = '' OR p_username = '' THEN
        RETURN 0;
    END IF;
    IF p_framed_ip ~ '^[0-9.]{7,15}$' THEN
        BEGIN
            framed := p_framed_ip::inet;
        EXCEPTION WHEN others THEN
            framed := NULL;
        END;
    END IF;
    INSERT INTO network_radiussession AS s (
        acct_unique_id, acct_session_id, username, subscription_id, nas_ip_address, nas_port_id,
        nas_port_type, framed_ip_address, calling_station_id, called_station_id, start_time,
        update_time, stop_time, session_time, input_octets, output_octets, terminate_cause)
    VALUES (
        p_unique_id, left(p_session_id, 64), left(p_username, 64),
        (SELECT a.subscription_id FROM network_pppoeaccount a WHERE a.username = p_username),
        nas, left(p_nas_port_id, 64), left(p_nas_port_type, 32), framed, left(p_calling_station_id, 64),
        left(p_called_station_id, 64), ev - make_interval(secs => secs), ev,
        CASE WHEN is_stop THEN ev END, secs, in_octets, out_octets,
        CASE WHEN is_stop THEN left(COALESCE(NULLIF(p_terminate_cause, ''), 'Unknown'), 32) ELSE '' END)
    ON CONFLICT (acct_unique_id) DO UPDATE SET
        start_time = LEAST(s.start_time, EXCLUDED.start_time),
        update_time = GREATEST(s.update_time, EXCLUDED.update_time),
        session_time = GREATEST(s.session_time, EXCLUDED.session_time),
        input_octets = GREATEST(s.input_octets, EXCLUDED.input_octets),
        output_octets = GREATEST(s.output_octets, EXCLUDED.output_octets),
        -- An anonymised session (data-subject erasure: user name cleared) takes no identifier back.
        framed_ip_address = CASE WHEN s.username = '' THEN s.framed_ip_address
                                 ELSE COALESCE(EXCLUDED.framed_ip_address, s.framed_ip_address) END,
        -- A real Stop is final; a session closed as stale reopens when the NAS still reports it.
        stop_time = CASE WHEN s.stop_time IS NOT NULL AND s.terminate_cause <> 'Stale-Session'
                         THEN s.stop_time ELSE EXCLUDED.stop_time END,
        terminate_cause = CASE WHEN s.stop_time IS NOT NULL AND s.terminate_cause <> 'Stale-Session'
                               THEN s.terminate_cause ELSE EXCLUDED.terminate_cause END;
    RETURN 1;
END $fn$;

CREATE OR REPLACE FUNCTION radius.session_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    d_in bigint := NEW.input_octets;
    d_out bigint := NEW.output_octets;
    tz text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        d_in := NEW.input_octets - OLD.input_octets;
        d_out := NEW.output_octets - OLD.output_octets;
    END IF;
    IF NEW.subscription_id IS NULL OR (d_in <= 0 AND d_out <= 0) THEN
        RETURN NULL;
    END IF;
    SELECT time_zone INTO tz FROM public.tenants_tenant WHERE schema_name = TG_TABLE_SCHEMA;
    PERFORM set_config('search_path', quote_ident(TG_TABLE_SCHEMA) || ', pg_catalog, pg_temp', true);
    INSERT INTO billing_usagerecord AS u (subscription_id, day, bytes_in, bytes_out)
    VALUES (NEW.subscription_id, (NEW.update_time AT TIME ZONE COALESCE(tz, 'UTC'))::date,
            GREATEST(d_in, 0), GREATEST(d_out, 0))
    ON CONFLICT (subscription_id, day) DO UPDATE
    SET bytes_in = u.bytes_in + EXCLUDED.bytes_in, bytes_out = u.bytes_out + EXCLUDED.bytes_out;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION radius.forget_tenant(p_tenant text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
    DELETE FROM radius.nas_directory WHERE tenant = p_tenant;
    DELETE FROM radius.subscriber WHERE tenant = p_tenant;
$fn$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA radius FROM PUBLIC;
"""

# What the FreeRADIUS role may call; nothing else in the database.
RADIUS_ROLE_FUNCTIONS = (
    "radius.nas_client(text)",
    "radius.authorize_check(text, text)",
    "radius.authorize_reply(text, text)",
    "radius.simul_count(text, text)",
    "radius.accounting(text, text, text, text, text, text, text, text, text, text, text, text, text, text, text, "
    "text, text, text)",
)


def radius_role() -> str:
    return getattr(settings, "RADIUS_DB_USER", "isp_radius")


def radius_interface_install() -> None:
    """Create or refresh schema `radius`, its functions and the FreeRADIUS role (idempotent).
    Serialised with an advisory lock: parallel migrations must not race on CREATE OR REPLACE."""
    role = radius_role()
    password = getattr(settings, "RADIUS_DB_PASSWORD", "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('radius_interface_install'))")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(role))
            )
        if password:
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        # Accounting commits without waiting for the WAL flush (one record = one transaction, so
        # waiting would cap accounting at the disk's flush rate). A database crash can lose the
        # last fraction of a second of records FreeRADIUS already answered: interim counters are
        # cumulative, so the next interim (or the stale-session close) recovers all but the last
        # delta of a session that stopped in that window. docs/radius.md.
        # Only when not set yet: roles are cluster-wide, and two databases' installs (parallel test
        # runs) altering the same role at once fail with "tuple concurrently updated".
        cursor.execute(
            "SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = %s AND s.setdatabase = 0 AND 'synchronous_commit=off' = ANY (s.setconfig)",
            [role],
        )
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("ALTER ROLE {} SET synchronous_commit = off").format(sql.Identifier(role)))
        cursor.execute(INSTALL_SQL)
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA radius TO {}").format(sql.Identifier(role)))
        for signature in RADIUS_ROLE_FUNCTIONS:
            cursor.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(signature), sql.Identifier(role))
            )
    # Row-level security on the shared tables and the tenants' restricted roles (docs/isolation.md).
    from tenants.isolation import isolation_install

    isolation_install()


def seal(cursor, secret: str) -> bytes:
    """Seal a secret for FreeRADIUS (inside the caller's transaction)."""
    cursor.execute("SELECT radius.seal(%s)", [secret])
    return bytes(cursor.fetchone()[0])


def radius_subscribers_rebuild(schema: str) -> int:
    """Recompute a tenant's rows of radius.subscriber from its tables (after a change of the
    reply rules, a restore, or to repair); returns how many accounts it holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT radius.subscriber_refresh_tenant(%s)", [schema])
        return cursor.fetchone()[0]
