"""Settings: every bad value is refused with a message naming its RECVAULT_ variable."""

from __future__ import annotations

import pytest

from recvault.errors import ConfigurationError
from recvault.settings import (
    RENAMED,
    Settings,
    load_settings,
    require_tokens,
    unknown_variables,
    warn_unknown_variables,
)

ACCOUNT = "AC" + "a" * 32
API_KEY = "SK" + "b" * 32


def refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    """The ConfigurationError message load_settings gives for these RECVAULT_ variables."""
    for name, value in variables.items():
        monkeypatch.setenv(f"RECVAULT_{name}", value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return str(caught.value)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No RECVAULT_ variable or .env file of the machine leaks into these tests."""
    import os

    for name in [n for n in os.environ if n.startswith("RECVAULT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("sid", [ACCOUNT + "\n", "AC123", "CA" + "a" * 32, ACCOUNT + "0"])
def test_a_malformed_account_sid_is_refused_by_name(monkeypatch, sid: str) -> None:
    message = refusal(monkeypatch, TWILIO_ACCOUNT_SID=sid)
    assert message.startswith("RECVAULT_TWILIO_ACCOUNT_SID:")
    assert "'AC' followed by 32 hex digits" in message


@pytest.mark.parametrize("token", ["changeme", "xxxxxxxx", " "])
def test_placeholder_tokens_are_refused(monkeypatch, token: str) -> None:
    message = refusal(monkeypatch, TWILIO_AUTH_TOKENS=f"realtoken123,{token}x" if token == " " else token)
    assert "RECVAULT_TWILIO_AUTH_TOKENS" in message
    assert token.strip() == "" or token not in message  # the value itself is never echoed


def test_tokens_split_on_commas_current_first() -> None:
    settings = Settings(twilio_auth_tokens="current-one, secondary-two")
    assert settings.tokens_for(None) == ["current-one", "secondary-two"]


def test_an_api_key_needs_its_secret_and_its_shape(monkeypatch) -> None:
    assert "go together" in refusal(monkeypatch, TWILIO_API_KEY_SID=API_KEY)
    message = refusal(monkeypatch, TWILIO_API_KEY_SID="SK123", TWILIO_API_KEY_SECRET="a-real-secret-value")
    assert "RECVAULT_TWILIO_API_KEY_SID must be 'SK' followed by 32 hex digits" in message


def test_subaccount_keys_must_be_account_sids(monkeypatch) -> None:
    message = refusal(monkeypatch, TWILIO_SUBACCOUNT_TOKENS='{"ACnope": ["a-real-token"]}')
    assert message.startswith("RECVAULT_TWILIO_SUBACCOUNT_TOKENS:") and "'ACnope'" in message


def test_the_broker_must_be_redis(monkeypatch) -> None:
    assert refusal(monkeypatch, BROKER_URL="amqp://guest@localhost//").startswith("RECVAULT_BROKER_URL:")


def test_ingest_waits_for_a_replica_by_default_only_with_sentinel() -> None:
    assert Settings().enqueue_replicas == 0
    assert Settings(broker_url="rediss://cache.example:6379/0").enqueue_replicas == 0
    sentinel = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"
    assert Settings(broker_url=sentinel).enqueue_replicas == 1
    assert Settings(broker_url=sentinel, broker_wait_replicas=0).enqueue_replicas == 0
    assert Settings(broker_wait_replicas=2).enqueue_replicas == 2


def test_transport_options_are_json(monkeypatch) -> None:
    assert "RECVAULT_BROKER_TRANSPORT_OPTIONS" in refusal(monkeypatch, BROKER_TRANSPORT_OPTIONS="master_name=x")
    monkeypatch.setenv("RECVAULT_BROKER_TRANSPORT_OPTIONS", '{"master_name": "mymaster"}')
    assert load_settings().broker_transport_options == {"master_name": "mymaster"}


def test_downloads_prefer_the_api_key() -> None:
    with_key = Settings(twilio_auth_tokens="the-auth-token", twilio_api_key_sid=API_KEY,
                        twilio_api_key_secret="the-key-secret")
    assert with_key.download_credentials(ACCOUNT) == (API_KEY, "the-key-secret")
    assert Settings(twilio_auth_tokens="the-auth-token").download_credentials(ACCOUNT) == (ACCOUNT, "the-auth-token")


def test_downloads_without_any_credential_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="RECVAULT_TWILIO_API_KEY_SID"):
        Settings().download_credentials(ACCOUNT)


def test_ingest_requires_a_token() -> None:
    with pytest.raises(ConfigurationError, match="RECVAULT_TWILIO_AUTH_TOKENS: required"):
        require_tokens(Settings())


def test_the_api_host_is_always_on_the_media_allowlist() -> None:
    settings = Settings(twilio_api_base_url="https://api.dublin.ie1.twilio.com", media_hosts="media.example")
    assert settings.allowed_media_hosts == {"api.dublin.ie1.twilio.com", "media.example"}


@pytest.mark.parametrize(("region", "host"), [("us1", "api.twilio.com"), ("ie1", "api.dublin.ie1.twilio.com"),
                                              ("IE1", "api.dublin.ie1.twilio.com"),
                                              ("au1", "api.sydney.au1.twilio.com")])
def test_the_region_sets_api_base_and_allowlist_together(monkeypatch, region: str, host: str) -> None:
    monkeypatch.setenv("RECVAULT_TWILIO_REGION", region)
    settings = load_settings()
    assert str(settings.twilio_api_base_url) == f"https://{host}/"
    assert settings.allowed_media_hosts == {host}


def test_an_explicit_api_base_keeps_the_regions_hosts_allowed(monkeypatch) -> None:
    monkeypatch.setenv("RECVAULT_TWILIO_REGION", "ie1")
    monkeypatch.setenv("RECVAULT_TWILIO_API_BASE_URL", "http://127.0.0.1:8180")
    assert load_settings().allowed_media_hosts == {"127.0.0.1", "api.dublin.ie1.twilio.com"}


def test_an_unknown_region_is_refused_by_name(monkeypatch) -> None:
    assert refusal(monkeypatch, TWILIO_REGION="eu2").startswith("RECVAULT_TWILIO_REGION:")


@pytest.mark.parametrize("token", ["changeme", "short-token", "x" * 20])
def test_an_api_token_must_be_long_and_real(monkeypatch, token: str) -> None:
    message = refusal(monkeypatch, API_TOKEN=token)
    assert "RECVAULT_API_TOKEN" in message and token not in message


def test_the_operations_routes_are_off_until_a_token_is_set() -> None:
    assert Settings().api_token.get_secret_value() == ""
    assert Settings(api_token="a-long-random-token-1234").api_token.get_secret_value() == "a-long-random-token-1234"
    assert "a-long-random" not in repr(Settings(api_token="a-long-random-token-1234"))


def test_worker_operations_defaults(monkeypatch) -> None:
    settings = load_settings()
    assert (settings.worker_metrics_port, settings.task_events, settings.media_playback) == (9808, True, True)
    assert "RECVAULT_WORKER_METRICS_PORT" in refusal(monkeypatch, WORKER_METRICS_PORT="70000")


def test_the_default_worker_is_two_threads_processes_of_24_archives_within_28_mib(monkeypatch) -> None:
    for name in ("WORKER_POOL", "WORKER_CONCURRENCY", "WORKER_PROCESSES", "WORKER_BUFFER_MIB"):
        monkeypatch.delenv(f"RECVAULT_{name}", raising=False)
    settings = Settings()
    assert settings.worker_pool == "threads"
    assert (settings.archives_in_flight(), settings.worker_process_count(), settings.worker_buffer_mib) == (24, 2, 28)
    # A prefork pool forks its own processes, one archive each: two of them, as before.
    assert (settings.archives_in_flight("prefork"), settings.worker_process_count("prefork")) == (2, 1)


def test_archives_in_flight_and_processes_come_from_their_variables(monkeypatch) -> None:
    monkeypatch.setenv("RECVAULT_WORKER_CONCURRENCY", "40")
    monkeypatch.setenv("RECVAULT_WORKER_PROCESSES", "3")
    monkeypatch.setenv("RECVAULT_WORKER_BUFFER_MIB", "64")
    settings = load_settings()
    assert (settings.archives_in_flight(), settings.worker_process_count(), settings.worker_buffer_mib) == (40, 3, 64)


@pytest.mark.parametrize(("name", "value"), [("WORKER_CONCURRENCY", "0"), ("WORKER_POOL", "gevent"),
                                             ("WORKER_PROCESSES", "0"), ("WORKER_BUFFER_MIB", "1")])
def test_a_bad_worker_sizing_is_refused_by_name(monkeypatch, name: str, value: str) -> None:
    assert f"RECVAULT_{name}" in refusal(monkeypatch, **{name: value})


# --- settings renamed to carry their unit ------------------------------------------------------

# An old variable, the value it is set to, and the renamed setting that takes the value.
OLD_NAMES = [("REDIS_SOCKET_TIMEOUT", "7.5", "redis_socket_timeout_seconds", 7.5),
             ("REDIS_CONNECT_TIMEOUT", "1.5", "redis_connect_timeout_seconds", 1.5),
             ("VISIBILITY_TIMEOUT", "45", "visibility_timeout_seconds", 45),
             ("TASK_TIME_LIMIT", "600", "task_time_limit_seconds", 600),
             ("RETRY_BACKOFF_MAX", "60", "retry_backoff_max_seconds", 60)]


def deprecations(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "recvault.settings" and r.levelname == "WARNING"]


def test_every_duration_setting_says_its_unit() -> None:
    durations = {"timeout", "ttl", "limit", "grace", "backoff", "delay", "interval", "window", "age"}
    for name in Settings.model_fields:
        if durations & set(name.split("_")):
            assert name.endswith("_seconds"), name
    assert set(RENAMED.values()) <= set(Settings.model_fields)
    assert not set(RENAMED) & set(Settings.model_fields)


@pytest.mark.parametrize(("old", "value", "field", "expected"), OLD_NAMES)
def test_an_old_variable_still_works_and_warns_naming_the_new_one(monkeypatch, caplog, old, value, field,
                                                                   expected) -> None:
    monkeypatch.setenv(f"RECVAULT_{old}", value)
    assert getattr(load_settings(), field) == expected
    assert deprecations(caplog) == [f"RECVAULT_{old} is deprecated; use RECVAULT_{old}_SECONDS"]


@pytest.mark.parametrize(("old", "value", "field", "expected"), OLD_NAMES)
def test_with_both_names_set_the_new_one_wins_and_the_old_one_still_warns(monkeypatch, caplog, old, value, field,
                                                                          expected) -> None:
    monkeypatch.setenv(f"RECVAULT_{old}", value)
    monkeypatch.setenv(f"RECVAULT_{old}_SECONDS", "3000")
    assert getattr(load_settings(), field) == 3000
    [warning] = deprecations(caplog)
    assert warning.startswith(f"RECVAULT_{old} is deprecated; use RECVAULT_{old}_SECONDS")
    assert "wins" in warning


def test_an_old_variable_in_the_env_file_works_too_and_the_environment_wins(monkeypatch, caplog, tmp_path) -> None:
    (tmp_path / ".env").write_text("RECVAULT_VISIBILITY_TIMEOUT=40\nRECVAULT_TASK_TIME_LIMIT=900\n")
    monkeypatch.setenv("RECVAULT_TASK_TIME_LIMIT", "1200")
    settings = load_settings()
    assert (settings.visibility_timeout_seconds, settings.task_time_limit_seconds) == (40, 1200)
    assert sorted(deprecations(caplog)) == [
        "RECVAULT_TASK_TIME_LIMIT is deprecated; use RECVAULT_TASK_TIME_LIMIT_SECONDS",
        "RECVAULT_VISIBILITY_TIMEOUT is deprecated; use RECVAULT_VISIBILITY_TIMEOUT_SECONDS"]


def test_a_new_name_in_the_env_file_beats_an_old_one_in_the_environment(monkeypatch, caplog, tmp_path) -> None:
    (tmp_path / ".env").write_text("RECVAULT_VISIBILITY_TIMEOUT_SECONDS=40\n")
    monkeypatch.setenv("RECVAULT_VISIBILITY_TIMEOUT", "90")
    assert load_settings().visibility_timeout_seconds == 40
    assert len(deprecations(caplog)) == 1


def test_no_warning_without_old_names(caplog) -> None:
    settings = load_settings()
    assert (settings.visibility_timeout_seconds, settings.task_time_limit_seconds) == (30, 3 * 3600)
    assert deprecations(caplog) == []


def test_old_keywords_work_for_one_release_too(caplog) -> None:
    settings = Settings(redis_connect_timeout=0.5, retry_backoff_max=7, task_time_limit_seconds=99,
                        task_time_limit=1)
    assert (settings.redis_connect_timeout_seconds, settings.retry_backoff_max_seconds) == (0.5, 7)
    assert settings.task_time_limit_seconds == 99
    assert len(deprecations(caplog)) == 3


@pytest.mark.parametrize("name", ["VISIBILITY_TIMEOUT_SECONDS", "VISIBILITY_TIMEOUT"])
def test_the_bounds_hold_under_either_name(monkeypatch, name: str) -> None:
    assert refusal(monkeypatch, **{name: "5"}).startswith("RECVAULT_VISIBILITY_TIMEOUT_SECONDS:")


@pytest.mark.parametrize(("name", "value"), [("REDIS_SOCKET_TIMEOUT_SECONDS", "0"),
                                             ("REDIS_CONNECT_TIMEOUT_SECONDS", "-1"),
                                             ("TASK_TIME_LIMIT_SECONDS", "4"), ("RETRY_BACKOFF_MAX_SECONDS", "0")])
def test_a_duration_out_of_bounds_is_refused_by_its_new_name(monkeypatch, name: str, value: str) -> None:
    assert refusal(monkeypatch, **{name: value}).startswith(f"RECVAULT_{name}:")


# --- every setting refused in one line naming it -------------------------------------------------

# A value each setting refuses; settings missing here take any text (names, paths, prefixes).
BAD_VALUES = {
    "public_url": "not a url", "trust_forwarded_headers": "maybe", "twilio_auth_tokens": "changeme",
    "broker_start_timeout_seconds": "0",
    "twilio_account_sid": "AC1", "twilio_subaccount_tokens": '{"AC' + "a" * 32 + '": "one-token-not-a-list"}',
    "max_body_bytes": "12", "idle_timeout_seconds": "0", "dedup_ttl_seconds": "5", "publish_timeout_seconds": "11",
    "spool_max_bytes": "10", "api_token": "short", "audit_key": "short",
    "audit_key_since": "2026-05-01T00:00:00", "media_playback": "perhaps", "twilio_region": "eu9",
    "twilio_api_base_url": "ftp://example.com", "twilio_api_key_sid": "SK1", "twilio_api_key_secret": "changeme",
    "media_format": "ogg", "delete_after_archive": "2", "not_found_grace_seconds": "-1",
    "price_refresh_seconds": "0", "price_refresh_attempts": "0", "broker_url": "amqp://guest@localhost//",
    "broker_transport_options": "[1]", "broker_wait_replicas": "99", "redis_socket_timeout_seconds": "0",
    "redis_connect_timeout_seconds": "soon", "visibility_timeout_seconds": "1",
    "seal_period_seconds": "299", "task_time_limit_seconds": "1",
    "max_retries": "-1", "retry_backoff_max_seconds": "0", "worker_pool": "gevent", "worker_concurrency": "0",
    "worker_processes": "100", "worker_metrics_port": "-1", "task_events": "often", "s3_endpoint_url": "nope",
    "s3_part_size_mib": "1", "worker_buffer_mib": "1", "s3_create_bucket": "sometimes", "log_level": "verbose",
    "log_format": "pretty", "identity_header": "X Email", "forwarded_for_hops": "0", "ops_port": "70000",
}
FREE_TEXT = {"seal_witness",
             "metrics_dir", "media_hosts", "queue", "worker_metrics_host", "s3_bucket", "s3_prefix", "s3_region",
             "s3_kms_key_id", "policy_file", "data_dir", "ops_host"}


def test_every_setting_has_a_bad_value_here_or_takes_any_text() -> None:
    assert set(BAD_VALUES) | FREE_TEXT == set(Settings.model_fields)


@pytest.mark.parametrize(("field", "value"), sorted(BAD_VALUES.items()))
def test_every_setting_is_refused_in_one_line_naming_it(monkeypatch, field: str, value: str) -> None:
    lines = refusal(monkeypatch, **{field.upper(): value}).splitlines()
    assert len(lines) == 1
    # A pair that goes together is named together (the API key and its secret).
    assert lines[0].startswith(f"RECVAULT_{field.upper()}") or f"RECVAULT_{field.upper()} " in lines[0], lines


def test_a_json_settings_key_is_named_after_the_variable(monkeypatch) -> None:
    account = "AC" + "a" * 32
    message = refusal(monkeypatch, TWILIO_SUBACCOUNT_TOKENS=f'{{"{account}": "one-token"}}')
    assert message == f"RECVAULT_TWILIO_SUBACCOUNT_TOKENS: {account}: Input should be a valid list"


@pytest.mark.parametrize(("written", "level"), [("debug", "DEBUG"), ("Info", "INFO"), ("WARN", "WARNING"),
                                                ("warning", "WARNING"), ("ERROR", "ERROR"), ("critical", "CRITICAL")])
def test_the_log_level_is_taken_in_any_case(monkeypatch, written: str, level: str) -> None:
    monkeypatch.setenv("RECVAULT_LOG_LEVEL", written)
    assert load_settings().log_level == level


@pytest.mark.parametrize("written", ["verbose", "", "10", "trace"])
def test_an_unknown_log_level_is_refused_listing_the_levels(monkeypatch, written: str) -> None:
    assert refusal(monkeypatch, LOG_LEVEL=written) == (
        f"RECVAULT_LOG_LEVEL: {written!r} is not a log level; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


# --- RECVAULT_ variables no setting reads ---------------------------------------------------------

def test_an_unknown_variable_is_named_with_the_setting_meant(tmp_path) -> None:
    environ = {"RECVAULT_TWILIO_AUTH_TOKEN": "x", "RECVAULT_LOGLEVEL": "debug", "recvault_s3_buckets": "b",
               "RECVAULT_SOMETHING_ELSE": "1", "PATH": "/bin", "TWILIO_AUTH_TOKEN": "not ours"}
    assert unknown_variables(environ, env_file=None) == [
        "RECVAULT_TWILIO_AUTH_TOKEN is not a recvault setting and is ignored; did you mean "
        "RECVAULT_TWILIO_AUTH_TOKENS?",
        "RECVAULT_LOGLEVEL is not a recvault setting and is ignored; did you mean RECVAULT_LOG_LEVEL?",
        "recvault_s3_buckets is not a recvault setting and is ignored; did you mean RECVAULT_S3_BUCKET?",
        "RECVAULT_SOMETHING_ELSE is not a recvault setting and is ignored",
    ]


def test_settings_old_names_and_the_test_suites_variables_are_known() -> None:
    environ = {f"RECVAULT_{field.upper()}": "x" for field in Settings.model_fields}
    environ.update({f"RECVAULT_{old.upper()}": "1" for old in RENAMED})
    environ.update(RECVAULT_TEST_REDIS="redis://127.0.0.1:6390", RECVAULT_FAULTS_REPORT="/tmp/report",
                   recvault_log_level="info")
    assert unknown_variables(environ, env_file=None) == []


def test_unknown_keys_of_the_env_file_are_named_too(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RECVAULT_QUEUE=q\nexport RECVAULT_VISIBILITY_TIMEOUT_SECOND=40\nOTHER_TOOL=1\n")
    assert unknown_variables({}, env_file=env_file) == [
        f"RECVAULT_VISIBILITY_TIMEOUT_SECOND (in {env_file}) is not a recvault setting and is ignored; "
        "did you mean RECVAULT_VISIBILITY_TIMEOUT_SECONDS?"]
    assert unknown_variables({}, env_file=tmp_path / "missing.env") == []


def test_unknown_variables_are_logged_as_warnings(monkeypatch, caplog, tmp_path) -> None:
    monkeypatch.setenv("RECVAULT_MAX_RETRY", "3")
    (tmp_path / ".env").write_text("RECVAULT_DATA_DIRECTORY=/srv\n")  # the working directory's .env
    warn_unknown_variables()
    assert sorted(r.getMessage() for r in caplog.records if r.levelname == "WARNING") == [
        "RECVAULT_DATA_DIRECTORY (in .env) is not a recvault setting and is ignored; did you mean RECVAULT_DATA_DIR?",
        "RECVAULT_MAX_RETRY is not a recvault setting and is ignored; did you mean RECVAULT_MAX_RETRIES?"]
