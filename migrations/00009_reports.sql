-- Final report versions and the roster behind each. Both are write-once:
-- triggers refuse every UPDATE, DELETE and TRUNCATE, so a version finance
-- has pulled can never change underneath it.
-- +goose Up
CREATE TABLE report_versions (
    account_sid         text COLLATE "C" NOT NULL,
    month               date NOT NULL,
    version             integer NOT NULL CHECK (version >= 1),
    supersedes          integer,
    added_users         bigint,
    generated_at        timestamptz NOT NULL,
    events_through      timestamptz,
    active_users        bigint NOT NULL,
    distinct_identities bigint NOT NULL,
    services            jsonb NOT NULL,
    rate_card           jsonb,
    checksum            text NOT NULL,
    PRIMARY KEY (account_sid, month, version),
    CHECK ((version = 1) = (supersedes IS NULL))
);

CREATE TABLE report_roster (
    account_sid     text COLLATE "C" NOT NULL,
    month           date NOT NULL,
    version         integer NOT NULL,
    service_sid     text COLLATE "C" NOT NULL,
    identity        text COLLATE "C" NOT NULL,
    first_activity  text NOT NULL,
    first_event_id  text COLLATE "C" NOT NULL,
    first_active_at timestamptz NOT NULL,
    last_active_at  timestamptz NOT NULL,
    events          bigint NOT NULL,
    PRIMARY KEY (account_sid, month, version, service_sid, identity)
);

-- +goose StatementBegin
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is write-once: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER report_versions_write_once BEFORE UPDATE OR DELETE ON report_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER report_versions_no_truncate BEFORE TRUNCATE ON report_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER report_roster_write_once BEFORE UPDATE OR DELETE ON report_roster
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER report_roster_no_truncate BEFORE TRUNCATE ON report_roster
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE report_roster;
DROP TABLE report_versions;
DROP FUNCTION refuse_change();
