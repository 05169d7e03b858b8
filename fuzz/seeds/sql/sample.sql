-- Sample database for coffer's tests and demo: many column types, two
-- schemas, views, functions, triggers, sequences, a partitioned table,
-- large objects. A bulk table is added at test time with pgbench -i.

CREATE SCHEMA app;
CREATE SCHEMA audit;

CREATE TYPE app.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN app.positive_money AS numeric(12,2) CHECK (VALUE >= 0);

CREATE SEQUENCE app.invoice_no START 1000 INCREMENT 7;

CREATE TABLE app.customers (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    email       varchar(200) UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00',
    birthday    date,
    prefs       jsonb NOT NULL DEFAULT '{}',
    tags        text[] NOT NULL DEFAULT '{}',
    scores      integer[],
    avatar      bytea,
    balance     app.positive_money NOT NULL DEFAULT 0,
    ratio       double precision,
    uuid        uuid,
    active      boolean NOT NULL DEFAULT true,
    ip          inet,
    span        interval
);

CREATE TABLE app.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES app.customers(id),
    status      app.order_status NOT NULL DEFAULT 'new',
    invoice     integer NOT NULL DEFAULT nextval('app.invoice_no'),
    amount      numeric(14,4) NOT NULL,
    placed_at   timestamptz NOT NULL,
    note        text
);
CREATE INDEX orders_customer_idx ON app.orders (customer_id);

CREATE TABLE app.measurements (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    taken_on  date NOT NULL,
    value     real NOT NULL
) PARTITION BY RANGE (taken_on);
CREATE TABLE app.measurements_2024 PARTITION OF app.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.measurements_2025 PARTITION OF app.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');

CREATE TABLE audit.events (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT '2024-06-01 12:00:00+00',
    tbl       text NOT NULL,
    op        text NOT NULL,
    row_data  jsonb
);

CREATE FUNCTION audit.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.events (tbl, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
    RETURN NEW;
END $$;

CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON app.orders
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE FUNCTION app.customer_total(cid bigint) RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(amount), 0) FROM app.orders WHERE customer_id = cid
$$;

CREATE VIEW app.customer_totals AS
    SELECT c.id, c.name, app.customer_total(c.id) AS total FROM app.customers c;

CREATE MATERIALIZED VIEW app.status_counts AS
    SELECT status, count(*) AS n FROM app.orders GROUP BY status;

INSERT INTO app.customers (name, email, birthday, prefs, tags, scores, avatar, balance, ratio, uuid, ip, span)
SELECT 'customer ' || i,
       'c' || i || '@example.com',
       DATE '1970-01-01' + (i * 37 % 18000),
       jsonb_build_object('theme', CASE WHEN i % 2 = 0 THEN 'dark' ELSE 'light' END, 'n', i, 'nested', jsonb_build_array(i, 'x', NULL)),
       ARRAY['t' || (i % 5), 'vip'],
       ARRAY[i, i * 2, i * 3],
       decode(md5(i::text) || '00ff00ff', 'hex'),
       (i * 13 % 10000) / 100.0,
       i / 7.0,
       md5(i::text)::uuid,
       ('10.0.' || (i % 256) || '.' || (i * 7 % 256))::inet,
       make_interval(days => i % 30, secs => i % 60)
FROM generate_series(1, 500) AS i;

-- A name with quotes and non-ASCII text.
INSERT INTO app.customers (name, email, prefs) VALUES ('O''Brien "Zoë" Ünïcödé', 'zoe@example.com', '{"emoji": "🙂"}');

INSERT INTO app.orders (customer_id, status, amount, placed_at, note)
SELECT 1 + (i % 500),
       (ARRAY['new', 'paid', 'shipped', 'cancelled']::app.order_status[])[1 + i % 4],
       (i * 31 % 100000) / 100.0,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + make_interval(hours => i),
       CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END
FROM generate_series(1, 3000) AS i;

INSERT INTO app.measurements (taken_on, value)
SELECT DATE '2024-01-01' + (i % 700), i * 0.5 FROM generate_series(1, 2000) AS i;

REFRESH MATERIALIZED VIEW app.status_counts;

SELECT lo_from_bytea(0, decode('deadbeef00010203', 'hex'));
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 1000), 'UTF8'));

COMMENT ON TABLE app.customers IS 'Customers, with one column of most types';
