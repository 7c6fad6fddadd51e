"""Configuration from STACKVOTE_* variables: defaults that work on a laptop, clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from server.settings import PREFIX, Settings, SettingsError


def test_the_defaults_work_on_a_laptop() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.redis_url is None
    assert settings.public_url == ""
    assert settings.log_level == "info"
    assert settings.session_ttl_hours == 720
    assert settings.unjoined_ttl_hours == 24
    assert settings.max_participants == 1500
    assert settings.max_sessions == 10_000


def test_every_knob_has_a_variable_with_the_prefix() -> None:
    assert PREFIX == "STACKVOTE_"
    env = {
        "STACKVOTE_HOST": "0.0.0.0",
        "STACKVOTE_PORT": "9000",
        "STACKVOTE_REDIS_URL": "redis://cache:6379/2",
        "STACKVOTE_PUBLIC_URL": "https://vote.example.com",
        "STACKVOTE_LOG_LEVEL": "debug",
        "STACKVOTE_SESSION_TTL_HOURS": "7.5",
        "STACKVOTE_MAX_PARTICIPANTS": "12",
        "STACKVOTE_MAX_SESSIONS": "50",
    }
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.public_url == "https://vote.example.com"
    assert settings.log_level == "debug"
    assert settings.session_ttl_hours == 7.5
    assert settings.max_participants == 12
    assert settings.max_sessions == 50


def test_the_old_ttl_in_days_still_counts() -> None:
    assert Settings.from_env({"STACKVOTE_SESSION_TTL_DAYS": "2"}).session_ttl_hours == 48
    both = {"STACKVOTE_SESSION_TTL_DAYS": "2", "STACKVOTE_SESSION_TTL_HOURS": "5"}
    assert Settings.from_env(both).session_ttl_hours == 5


def test_a_session_nobody_joined_never_outlives_the_others() -> None:
    assert Settings(session_ttl_hours=2).unjoined_ttl_seconds == 7200
    assert Settings(session_ttl_hours=48).unjoined_ttl_seconds == 86400


@pytest.mark.parametrize("proxies", ["*", "nginx", "10.0.0.0/99", "127.0.0.1,*"])
def test_trusting_any_proxy_or_a_name_is_refused(proxies: str) -> None:
    with pytest.raises(SettingsError, match="never \\*"):
        Settings(trusted_proxies=proxies).validated()


@pytest.mark.parametrize("proxies", ["127.0.0.1", "172.31.250.10", "10.0.0.0/8,::1", ""])
def test_proxies_are_addresses_or_networks(proxies: str) -> None:
    assert Settings(trusted_proxies=proxies).validated().trusted_proxies == proxies


def test_numbers_are_parsed_as_numbers() -> None:
    settings = Settings.from_env({"STACKVOTE_PORT": " 8080 "})
    assert settings.port == 8080
    assert isinstance(settings.port, int)


def test_float_knobs_are_parsed_as_floats() -> None:
    floats = [f.name for f in dataclasses.fields(Settings) if str(f.type).startswith("float")]
    for name in floats:
        settings = Settings.from_env({PREFIX + name.upper(): "2.5"})
        assert getattr(settings, name) == 2.5


def test_variables_without_the_prefix_are_ignored() -> None:
    assert Settings.from_env({"PORT": "1234", "REDIS_URL": "nonsense"}) == Settings()


def test_empty_variables_mean_the_default() -> None:
    assert Settings.from_env({"STACKVOTE_PORT": "", "STACKVOTE_REDIS_URL": ""}) == Settings()


@pytest.mark.parametrize(
    "url", ["redis://localhost", "rediss://secure:6380/0", "unix:///tmp/r.sock"]
)
def test_redis_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"STACKVOTE_REDIS_URL": url}).redis_url == url


def test_the_public_url_loses_its_trailing_slash() -> None:
    settings = Settings.from_env({"STACKVOTE_PUBLIC_URL": "https://vote.example.com/"})
    assert settings.public_urls == ["https://vote.example.com"]
    assert settings.public_origins == ["https://vote.example.com"]


def test_several_public_urls_all_become_allowed_origins() -> None:
    settings = Settings.from_env(
        {"STACKVOTE_PUBLIC_URL": "https://vote.example.com, http://10.0.0.5:8080/stackvote"}
    )
    assert settings.public_urls[0] == "https://vote.example.com"
    assert settings.public_origins == ["https://vote.example.com", "http://10.0.0.5:8080"]


def test_without_a_public_url_links_fall_back_to_the_listening_address() -> None:
    assert Settings.from_env({}, port=8123).listening_url == "http://127.0.0.1:8123"
    assert Settings(host="0.0.0.0", port=80).listening_url == "http://127.0.0.1:80"
    assert Settings(host="::1", port=80).listening_url == "http://[::1]:80"
    assert Settings(host="192.0.2.7", port=80).listening_url == "http://192.0.2.7:80"


def test_no_proxy_is_trusted_by_default() -> None:
    assert Settings.from_env({}).trusted_proxies == ""


@pytest.mark.parametrize(
    "name",
    [
        "STACKVOTE_LIMIT_EVENTS",
        "STACKVOTE_LIMIT_CONNECTS",
        "STACKVOTE_LIMIT_CREATES",
        "STACKVOTE_LIMIT_JOIN_CODES",
        "STACKVOTE_LIMIT_VALIDATIONS",
        "STACKVOTE_LIMIT_FRAMES",
        "STACKVOTE_LIMIT_SYNCS",
        "STACKVOTE_LIMIT_SYNCS_PER_ADDRESS",
    ],
)
def test_a_rate_limit_that_cannot_be_read_is_refused(name: str) -> None:
    with pytest.raises(SettingsError, match="must look like '20/second'"):
        Settings.from_env({name: "lots"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STACKVOTE_CONNECTIONS", "fastest"),
        ("STACKVOTE_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ("STACKVOTE_MAX_BACKLOG_KB", "0"),
        ("STACKVOTE_CONNECT_WITHIN_SECONDS", "0"),
        ("STACKVOTE_HEADER_TIMEOUT_SECONDS", "-1"),
        ("STACKVOTE_COALESCE_FRAMES_PER_SECOND", "10"),
    ],
)
def test_connection_limits_that_cannot_work_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({name: value})


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACKVOTE_PORT", "8123")
    monkeypatch.setenv("STACKVOTE_HOST", "::1")
    settings = Settings.from_env()
    assert (settings.host, settings.port) == ("::1", 8123)


def test_an_explicit_environment_shuts_out_the_process_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACKVOTE_PORT", "8123")
    assert Settings.from_env({}).port == 8000


# --- overrides (the CLI)


def test_overrides_win_over_the_environment() -> None:
    env = {"STACKVOTE_PORT": "9000", "STACKVOTE_HOST": "0.0.0.0"}
    settings = Settings.from_env(env, port=9100, redis_url="redis://other:6379/0")
    assert settings.port == 9100
    assert settings.redis_url == "redis://other:6379/0"
    assert settings.host == "0.0.0.0"


def test_overrides_left_unset_keep_the_environment() -> None:
    env = {"STACKVOTE_PORT": "9000"}
    settings = Settings.from_env(env, port=None, host=None, log_level=None)
    assert settings.port == 9000
    assert settings.host == "127.0.0.1"


def test_overrides_are_validated_too() -> None:
    with pytest.raises(SettingsError, match="port must be between 1 and 65535, not 0"):
        Settings.from_env({}, port=0)
    with pytest.raises(SettingsError, match="must look like https"):
        Settings.from_env({}, public_url="vote.example.com")


# --- bad values


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STACKVOTE_PORT": "eighty"}, "STACKVOTE_PORT must be a number, not 'eighty'"),
        ({"STACKVOTE_PORT": "80.5"}, "STACKVOTE_PORT must be a number, not '80.5'"),
        ({"STACKVOTE_PORT": "0"}, "port must be between 1 and 65535, not 0"),
        ({"STACKVOTE_PORT": "-1"}, "port must be between 1 and 65535, not -1"),
        ({"STACKVOTE_PORT": "65536"}, "port must be between 1 and 65535, not 65536"),
        (
            {"STACKVOTE_MAX_SESSIONS": "lots"},
            "STACKVOTE_MAX_SESSIONS must be a number, not 'lots'",
        ),
        (
            {"STACKVOTE_SESSION_TTL_HOURS": "a week"},
            "STACKVOTE_SESSION_TTL_HOURS must be a number, not 'a week'",
        ),
        ({"STACKVOTE_SESSION_TTL_HOURS": "0"}, "session_ttl_hours must be a positive number"),
        ({"STACKVOTE_SESSION_TTL_DAYS": "-1"}, "session_ttl_hours must be a positive number"),
        ({"STACKVOTE_UNJOINED_TTL_HOURS": "nan"}, "unjoined_ttl_hours must be a positive number"),
        ({"STACKVOTE_IDLE_MINUTES": "-3"}, "idle_minutes must be a positive number"),
        ({"STACKVOTE_MAX_PARTICIPANTS": "0"}, "max_participants must be at least 1"),
        ({"STACKVOTE_MAX_SESSIONS": "-5"}, "max_sessions must be at least 1"),
        (
            {"STACKVOTE_REDIS_URL": "localhost:6379"},
            "redis url 'localhost:6379': it must start with one of redis://, rediss://, unix://, "
            "redis+sentinel://, redis+cluster://",
        ),
        (
            {"STACKVOTE_REDIS_URL": "http://cache:6379"},
            "redis url 'http://cache:6379': it must start with one of redis://",
        ),
        (
            {"STACKVOTE_REDIS_URL": "redis+sentinel://:hunter2@s1:26379,s2:26379"},
            "redis url 'redis+sentinel://:***@s1:26379,s2:26379': name the service after the "
            "sentinels: .../mymaster/0",
        ),
        (
            {"STACKVOTE_REDIS_URL": "redis+sentinel://s1:26379,s2/mymaster/0"},
            "redis url 'redis+sentinel://s1:26379,s2/mymaster/0': 's2' must be host:port",
        ),
        (
            {"STACKVOTE_REDIS_URL": "redis+sentinel://s1:26379/mymaster/zero"},
            "redis url 'redis+sentinel://s1:26379/mymaster/zero': the database must be a number",
        ),
        (
            {"STACKVOTE_REDIS_URL": "redis+cluster://a:7000,b:7001/3"},
            "redis url 'redis+cluster://a:7000,b:7001/3': a cluster URL ends after its hosts",
        ),
        ({"STACKVOTE_REDIS_WAIT_REPLICAS": "-1"}, "redis_wait_replicas must be 0"),
        ({"STACKVOTE_REDIS_WAIT_MS": "0"}, "redis_wait_ms must be a positive number"),
        ({"STACKVOTE_REDIS_CHANNELS": "all"}, "redis_channels must be 'room'"),
        (
            {"STACKVOTE_PUBLIC_URL": "ftp://vote.example.com"},
            "public url 'ftp://vote.example.com' must look like https://vote.example.com",
        ),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(
    env: dict[str, str], message: str
) -> None:
    before = dict(env)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message)
    assert env == before


def test_settings_cannot_be_changed_after_the_start() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_the_known_log_levels_are_accepted(level: str) -> None:
    assert Settings.from_env({"STACKVOTE_LOG_LEVEL": level}).log_level == level


def test_an_unknown_log_level_is_refused() -> None:
    # Unchecked, it would reach logging and crash `stackvote serve` with a traceback.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"STACKVOTE_LOG_LEVEL": "loud"})
    assert str(caught.value) == "log level 'loud' must be one of debug, info, warning, error"
    with pytest.raises(SettingsError, match="log level 'verbose'"):
        Settings.from_env({}, log_level="verbose")


def test_the_memory_store_url_is_accepted() -> None:
    settings = Settings.from_env({"STACKVOTE_REDIS_URL": "memory://"})
    assert settings.redis_url == "memory://"
    assert settings.uses_redis is False


@pytest.mark.parametrize(("url", "uses_redis"), [(None, False), ("redis://cache:6379/0", True)])
def test_uses_redis_follows_the_url(url: str | None, uses_redis: bool) -> None:
    assert Settings(redis_url=url).uses_redis is uses_redis


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5"])
def test_an_unusable_instance_ttl_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="instance_ttl_seconds"):
        Settings.from_env({"STACKVOTE_INSTANCE_TTL_SECONDS": value})


def test_people_are_away_after_two_minutes_offline_unless_configured() -> None:
    assert Settings.from_env({}).away_after_seconds == 120
    assert Settings.from_env({"STACKVOTE_AWAY_AFTER_SECONDS": "0"}).away_after_seconds == 0
    assert Settings.from_env({"STACKVOTE_AWAY_AFTER_SECONDS": "30"}).away_after_seconds == 30


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon"])
def test_an_unusable_away_time_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=r"AWAY_AFTER_SECONDS|away_after_seconds"):
        Settings.from_env({"STACKVOTE_AWAY_AFTER_SECONDS": value})


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "service", "db"),
    [
        ("redis://cache:6379/2", "single", (), "", 0),
        (
            "redis+sentinel://s1:26379,s2:26380,[::1]:26381/mymaster/3",
            "sentinel",
            (("s1", 26379), ("s2", 26380), ("::1", 26381)),
            "mymaster",
            3,
        ),
        ("redis+sentinel://s1:26379/main", "sentinel", (("s1", 26379),), "main", 0),
        ("redis+cluster://n1:7000,n2:7001", "cluster", (("n1", 7000), ("n2", 7001)), "", 0),
    ],
)
def test_the_three_redis_url_forms_are_read(
    url: str, kind: str, hosts: tuple[tuple[str, int], ...], service: str, db: int
) -> None:
    from server.store import urls

    target = urls.parse(url)
    assert (target.kind, target.hosts, target.service, target.db) == (kind, hosts, service, db)
    assert Settings.from_env({"STACKVOTE_REDIS_URL": url}).uses_redis


def test_credentials_in_a_redis_url_are_read_and_never_shown() -> None:
    from server.store import urls

    target = urls.parse("redis+cluster://app:s%40cret@n1:7000,n2:7001")
    assert (target.username, target.password) == ("app", "s@cret")
    assert "cret" not in target.shown
    assert target.shown == "redis+cluster://app:***@n1:7000,n2:7001"


def test_serving_collects_the_youngest_generation_less_often_and_freezes_the_start() -> None:
    import gc

    from server import serve

    before = gc.get_threshold()
    try:
        serve.tune_gc()
        assert gc.get_threshold() == (serve.GC_THRESHOLD_YOUNGEST, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
