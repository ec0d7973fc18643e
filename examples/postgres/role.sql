-- The read-only role of a gate (README, PostgreSQL). Run as the owner of the event tables.
CREATE ROLE slo_gate LOGIN PASSWORD 'change-me';
ALTER ROLE slo_gate SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE events TO slo_gate;
GRANT USAGE ON SCHEMA public TO slo_gate;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO slo_gate;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO slo_gate;
