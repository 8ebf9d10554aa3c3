import pytest

from hubstress_ext.errors import OptionError
from hubstress_ext.hub.options import (
    ActivityOptions,
    HubOptions,
    StressOptions,
    normalize_endpoint,
    parse_user_options,
)

ENV = {"JUPYTERHUB_ENDPOINT": "http://127.0.0.1:8000", "JUPYTERHUB_API_TOKEN": "envtoken"}


def test_env_fills_endpoint_and_token():
    opts = HubOptions().resolve(ENV)
    assert opts.endpoint == "http://127.0.0.1:8000/hub/api"
    assert opts.token == "envtoken"


def test_flags_win_over_env():
    opts = HubOptions(endpoint="http://127.0.0.1:9/hub/api/", token="flag").resolve(ENV)
    assert opts.endpoint == "http://127.0.0.1:9/hub/api"
    assert opts.token == "flag"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("count", 0, "--count must be at least 1 (got 0)"),
        ("batch_size", -1, "--batch-size must be at least 1 (got -1)"),
        ("workers", 0, "--workers must be at least 1 (got 0)"),
        ("prefix", "Bad", "--prefix must start with a lowercase letter"),
        ("run_timeout", 0, "--run-timeout must be a positive number"),
    ],
)
def test_bad_numbers_name_the_option(field, value, message):
    opts = ActivityOptions(**{field: value})
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        opts.resolve(ENV)


def test_missing_token_and_endpoint():
    with pytest.raises(OptionError, match="missing endpoint"):
        HubOptions(token="x").resolve({})
    with pytest.raises(OptionError, match="missing token"):
        HubOptions(endpoint="http://127.0.0.1:8000").resolve({})


def test_dry_run_needs_no_token_and_sandbox_needs_neither():
    assert HubOptions(dry_run=True).resolve({}).token is None
    assert HubOptions(sandbox=True).resolve({}).endpoint is None


@pytest.mark.parametrize("url", ["ftp://hub", "127.0.0.1:8000", "http://", "hub/api"])
def test_endpoint_must_be_http_url(url):
    with pytest.raises(OptionError, match="must be an http"):
        normalize_endpoint(url)


def test_public_options_never_hold_the_token():
    opts = StressOptions(endpoint="http://127.0.0.1:1", token="s3cret-token").resolve({})
    assert "s3cret-token" not in repr(opts)
    assert "s3cret-token" not in str(opts.public())
    assert opts.public()["token"] == "***"


def test_activity_defaults_to_a_bounded_duration():
    opts = ActivityOptions(sandbox=True).resolve({})
    assert opts.duration == 10.0
    with pytest.raises(OptionError, match="--requests must be at least 1"):
        ActivityOptions(sandbox=True, requests=0).resolve({})


def test_profile_becomes_user_options():
    opts = StressOptions(sandbox=True, profile="gpu", user_options={"image": "x"})
    assert opts.spawn_options() == {"image": "x", "profile": "gpu"}


def test_user_options_must_be_a_json_object():
    assert parse_user_options('{"a": 1}') == {"a": 1}
    with pytest.raises(OptionError, match="JSON object"):
        parse_user_options("[1]")
    with pytest.raises(OptionError, match="JSON object"):
        parse_user_options("{nope")
