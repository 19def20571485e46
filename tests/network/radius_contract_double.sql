-- TEST DOUBLE of the RADIUS SQL contract - not the real thing.
--
-- FreeRADIUS (network/radius/freeradius/mods/sql.conf and sites/dynamic-clients.conf)
-- calls only the radius.* functions below; the real ones are provided by the back
-- office over the tenants' RADIUS tables. This file stands them up over a few
-- scratch tables so that the FreeRADIUS configuration can be exercised on its own
-- (tests/network/test_freeradius_server.py). Never load it into a real database.
--
-- Usage, as a superuser, in a throw-away database, with the role isp_radius existing:
--   psql -v ON_ERROR_STOP=1 -d radius_scratch -f tests/network/radius_contract_double.sql
--
-- The contract it imitates:
--   * every argument is text (FreeRADIUS expands a missing attribute to ''), the
--     functions parse it and never raise on odd input;
--   * `tenant` is the tenant's schema name, i.e. the NAS's Client-Shortname;
--   * radius.accounting is idempotent: an upsert by unique_id;
--   * the role isp_radius may EXECUTE these functions and nothing else.

CREATE SCHEMA radius;
CREATE SCHEMA radius_scratch;

-- A NAS as the back office registers it: source IP, shared secret, tenant schema.
CREATE TABLE radius_scratch.nas (
    ip text PRIMARY KEY,
    secret text NOT NULL,
    tenant text NOT NULL
);

CREATE TABLE radius_scratch.subscriber (
    id bigserial PRIMARY KEY,
    tenant text NOT NULL,
    username text NOT NULL,
    password text NOT NULL,
    simultaneous_use integer,
    suspended boolean NOT NULL DEFAULT false,
    rate_limit text,
    framed_ip text,
    UNIQUE (tenant, username)
);

CREATE TABLE radius_scratch.session (
    unique_id text PRIMARY KEY,
    tenant text NOT NULL,
    session_id text NOT NULL,
    username text NOT NULL,
    nas_ip text NOT NULL,
    started_at timestamptz,
    updated_at timestamptz,
    stopped_at timestamptz,
    session_time bigint,
    input_bytes numeric,
    output_bytes numeric,
    terminate_cause text
);

-- Every call of radius.accounting, to see what arrived how many times.
CREATE TABLE radius_scratch.accounting_call (
    id bigserial PRIMARY KEY,
    called_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant text NOT NULL,
    status text NOT NULL,
    unique_id text NOT NULL,
    session_id text NOT NULL,
    username text NOT NULL,
    event_time text NOT NULL,
    args text[] NOT NULL
);

-- '' or garbage -> NULL; digits -> the number.
CREATE FUNCTION radius_scratch.to_int(value text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN $1 ~ '^[0-9]{1,20}$' THEN $1::numeric END
$$;

CREATE FUNCTION radius.nas_client(src text)
RETURNS TABLE (secret text, tenant text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = radius_scratch, pg_temp AS $$
    SELECT n.secret, n.tenant FROM radius_scratch.nas AS n WHERE n.ip = $1
$$;

CREATE FUNCTION radius.authorize_check(tenant text, username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = radius_scratch, pg_temp AS $$
    SELECT s.id * 10 + k.n, s.username, k.attribute, k.value, ':='
      FROM radius_scratch.subscriber AS s
     CROSS JOIN LATERAL (VALUES
            (1, 'Cleartext-Password', s.password),
            (2, 'Simultaneous-Use', s.simultaneous_use::text),
            (3, 'Auth-Type', CASE WHEN s.suspended THEN 'Reject' END)
           ) AS k (n, attribute, value)
     WHERE s.tenant = $1 AND s.username = $2 AND k.value IS NOT NULL
     ORDER BY 1
$$;

CREATE FUNCTION radius.authorize_reply(tenant text, username text)
RETURNS TABLE (id bigint, username text, attribute text, value text, op text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = radius_scratch, pg_temp AS $$
    SELECT s.id * 10 + k.n, s.username, k.attribute, k.value, '='
      FROM radius_scratch.subscriber AS s
     CROSS JOIN LATERAL (VALUES
            (1, 'Mikrotik-Rate-Limit', s.rate_limit),
            (2, 'Framed-IP-Address', s.framed_ip)
           ) AS k (n, attribute, value)
     WHERE s.tenant = $1 AND s.username = $2 AND NOT s.suspended AND k.value IS NOT NULL
     ORDER BY 1
$$;

CREATE FUNCTION radius.simul_count(tenant text, username text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = radius_scratch, pg_temp AS $$
    SELECT count(*) FROM radius_scratch.session AS s
     WHERE s.tenant = $1 AND s.username = $2 AND s.stopped_at IS NULL
$$;

CREATE FUNCTION radius.accounting(
    tenant text, status text, unique_id text, session_id text, username text,
    nas_ip text, nas_port_id text, nas_port_type text, framed_ip text,
    calling_station_id text, called_station_id text, session_time text,
    input_octets text, input_gigawords text, output_octets text, output_gigawords text,
    terminate_cause text, event_time text
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = radius_scratch, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    at timestamptz := coalesce(to_timestamp(radius_scratch.to_int(event_time)), now());
    input_bytes numeric := coalesce(radius_scratch.to_int(input_gigawords), 0) * 4294967296
                           + coalesce(radius_scratch.to_int(input_octets), 0);
    output_bytes numeric := coalesce(radius_scratch.to_int(output_gigawords), 0) * 4294967296
                            + coalesce(radius_scratch.to_int(output_octets), 0);
BEGIN
    INSERT INTO radius_scratch.accounting_call (tenant, status, unique_id, session_id, username, event_time, args)
    VALUES (tenant, status, unique_id, session_id, username, event_time,
            ARRAY[tenant, status, unique_id, session_id, username, nas_ip, nas_port_id, nas_port_type,
                  framed_ip, calling_station_id, called_station_id, session_time, input_octets,
                  input_gigawords, output_octets, output_gigawords, terminate_cause, event_time]);

    IF status IN ('Accounting-On', 'Accounting-Off') THEN  -- the NAS restarted: its sessions are over
        UPDATE radius_scratch.session AS s
           SET stopped_at = at, terminate_cause = 'NAS-Reboot'
         WHERE s.tenant = tenant AND s.nas_ip = nas_ip AND s.stopped_at IS NULL;
        RETURN 1;
    END IF;
    IF status NOT IN ('Start', 'Interim-Update', 'Stop') OR unique_id = '' THEN
        RETURN 0;
    END IF;

    -- Upsert by unique_id; a late (replayed) record never moves the counters back.
    INSERT INTO radius_scratch.session AS s
           (unique_id, tenant, session_id, username, nas_ip, started_at, updated_at, stopped_at,
            session_time, input_bytes, output_bytes, terminate_cause)
    VALUES (unique_id, tenant, session_id, username, nas_ip,
            CASE WHEN status = 'Start' THEN at END, at, CASE WHEN status = 'Stop' THEN at END,
            radius_scratch.to_int(session_time), input_bytes, output_bytes, nullif(terminate_cause, ''))
    ON CONFLICT ON CONSTRAINT session_pkey DO UPDATE
       SET started_at = coalesce(s.started_at, EXCLUDED.started_at),
           stopped_at = coalesce(s.stopped_at, EXCLUDED.stopped_at),
           terminate_cause = coalesce(s.terminate_cause, EXCLUDED.terminate_cause),
           updated_at = greatest(s.updated_at, EXCLUDED.updated_at),
           session_time = greatest(s.session_time, EXCLUDED.session_time),
           input_bytes = greatest(s.input_bytes, EXCLUDED.input_bytes),
           output_bytes = greatest(s.output_bytes, EXCLUDED.output_bytes);
    RETURN 1;
END
$$;

-- isp_radius: EXECUTE on the contract functions and nothing else.
REVOKE ALL ON SCHEMA radius_scratch FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA radius FROM PUBLIC;
GRANT USAGE ON SCHEMA radius TO isp_radius;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA radius TO isp_radius;
