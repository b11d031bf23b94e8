"""mediamon.toml: defaults, paths, where the file is found, and every way it can be wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mediamon.core import config as config_module
from mediamon.core.config import (
    DownloadsConfig,
    Instance,
    NgrokConfig,
    ServerConfig,
    StorageConfig,
    WapiConfig,
    WhatsAppConfig,
    find_config_path,
    load_config,
    parse_config,
)
from mediamon.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "mediamon.toml.example"
TOKEN = "tok-4f9a1c-do-not-leak"
SECRET = "shh-webhook-secret"

ONE_INSTANCE = f"""
[[instances]]
id = "3B6XIW-ZTS923-GEAY6V"
token = "{TOKEN}"
client = "2"
"""


def write(folder: Path, text: str, name: str = "mediamon.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(folder: Path, text: str) -> str:
    """Load `text` as mediamon.toml and return the ConfigError message it must raise."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- defaults and values -------------------------------------------------------------------


def test_an_empty_config_has_every_default(tmp_path: Path) -> None:
    config = parse_config({}, tmp_path)

    assert config.path is None
    assert config.server == ServerConfig("127.0.0.1", 8000, "", 4194304, "")
    assert config.storage == StorageConfig(
        tmp_path.resolve() / "media_storage", tmp_path.resolve() / "mediamon.db", 30
    )
    assert config.wapi == WapiConfig("https://api.w-api.app/v1", 30.0)
    assert config.whatsapp == WhatsAppConfig("https://mmg.whatsapp.net")
    assert config.downloads == DownloadsConfig(8, 6, 1.0, 300.0, True, ("wapi", "cdn"))
    assert config.ngrok == NgrokConfig("http://127.0.0.1:4040")
    assert config.instances == ()
    assert config.secrets == ()


def test_load_config_reads_instances_and_records_the_absolute_path(tmp_path: Path) -> None:
    path = write(tmp_path, ONE_INSTANCE + '[[instances]]\nid = "B"\ntoken = "t2"\nclient = 7\n')

    config = load_config(path)

    assert config.path == path.resolve()
    assert config.instances == (
        Instance("3B6XIW-ZTS923-GEAY6V", TOKEN, "2"),
        Instance("B", "t2", "7"),
    )


def test_instance_looks_up_by_id(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ONE_INSTANCE))

    found = config.instance("3B6XIW-ZTS923-GEAY6V")

    assert found is not None
    assert found.client == "2"
    assert config.instance("nope") is None


def test_integer_client_becomes_a_string(tmp_path: Path) -> None:
    config = parse_config({"instances": [{"id": "A", "token": "t", "client": 2}]}, tmp_path)

    assert config.instances[0].client == "2"


def test_an_integer_is_accepted_where_a_float_is_expected(tmp_path: Path) -> None:
    data = {"wapi": {"timeout": 5}, "downloads": {"backoff_initial": 2, "backoff_max": 2}}

    config = parse_config(data, tmp_path)

    assert config.wapi.timeout == 5.0
    assert isinstance(config.wapi.timeout, float)
    assert isinstance(config.downloads.backoff_max, float)


def test_trailing_slashes_are_stripped_from_urls(tmp_path: Path) -> None:
    data = {
        "server": {"public_url": "https://example.ngrok.app/"},
        "wapi": {"base_url": "http://127.0.0.1:9000/v1/"},
        "whatsapp": {"cdn_base_url": "http://127.0.0.1:9001//"},
        "ngrok": {"api_url": "http://127.0.0.1:4040/"},
    }

    config = parse_config(data, tmp_path)

    assert config.server.public_url == "https://example.ngrok.app"
    assert config.wapi.base_url == "http://127.0.0.1:9000/v1"
    assert config.whatsapp.cdn_base_url == "http://127.0.0.1:9001"
    assert config.ngrok.api_url == "http://127.0.0.1:4040"


def test_sources_become_a_tuple_in_the_given_order(tmp_path: Path) -> None:
    config = parse_config({"downloads": {"sources": ["cdn"]}}, tmp_path)
    assert config.downloads.sources == ("cdn",)

    config = parse_config({"downloads": {"sources": ["cdn", "wapi"]}}, tmp_path)
    assert config.downloads.sources == ("cdn", "wapi")


def test_values_are_frozen(tmp_path: Path) -> None:
    config = parse_config({}, tmp_path)

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


def test_every_dataclass_field_has_exactly_one_rule() -> None:
    # The rule table and the dataclasses must not drift apart when a key is added.
    for name, cls in config_module._SECTIONS.items():
        fields = {spec.name for spec in dataclasses.fields(cls)}
        assert fields == set(config_module._RULES[name]), name
    instance_fields = {spec.name for spec in dataclasses.fields(Instance)}
    assert instance_fields == set(config_module._RULES["instances"])


# --- paths ---------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "etc",
        '[storage]\nmedia_dir = "../media"\ndatabase = "state/mediamon.db"\n',
    )
    # Started from some other folder, which must not matter.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)

    assert config.storage.media_dir == (tmp_path / "media").resolve()
    assert config.storage.database == (tmp_path / "etc" / "state" / "mediamon.db").resolve()


def test_default_paths_also_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "conf", ""))

    assert config.storage.media_dir == (tmp_path / "conf" / "media_storage").resolve()
    assert config.storage.database == (tmp_path / "conf" / "mediamon.db").resolve()


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    media = tmp_path / "somewhere" / "media"

    config = parse_config({"storage": {"media_dir": str(media)}}, tmp_path / "conf")

    assert config.storage.media_dir == media.resolve()


def test_a_relative_base_dir_still_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "")

    config = load_config(Path("mediamon.toml"))

    assert config.storage.media_dir.is_absolute()
    assert config.storage.media_dir == tmp_path.resolve() / "media_storage"
    assert config.path == tmp_path.resolve() / "mediamon.toml"


# --- finding the file ----------------------------------------------------------------------


def test_explicit_path_wins_over_the_environment() -> None:
    environ = {"MEDIAMON_CONFIG": "/from/env.toml"}

    assert find_config_path("/explicit.toml", environ) == Path("/explicit.toml")


def test_environment_wins_over_the_default() -> None:
    assert find_config_path(None, {"MEDIAMON_CONFIG": "/from/env.toml"}) == Path("/from/env.toml")


def test_default_is_mediamon_toml_in_the_working_folder() -> None:
    assert find_config_path(None, {}) == Path("mediamon.toml")


def test_an_empty_environment_variable_counts_as_unset() -> None:
    assert find_config_path(None, {"MEDIAMON_CONFIG": ""}) == Path("mediamon.toml")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[downloads]\nconcurrency = "eight"',
            '[downloads] concurrency must be an integer from 1 to 256, got "eight"',
        ),
        (
            "[downloads]\nconcurrency = 0",
            "[downloads] concurrency must be an integer from 1 to 256, got 0",
        ),
        (
            "[downloads]\nconcurrency = 257",
            "[downloads] concurrency must be an integer from 1 to 256, got 257",
        ),
        ("[server]\nport = 70000", "[server] port must be an integer from 0 to 65535, got 70000"),
        ("[server]\nport = true", "[server] port must be an integer from 0 to 65535, got true"),
        ("[server]\nport = 80.0", "[server] port must be an integer from 0 to 65535, got 80.0"),
        ("[server]\nmax_body = 0", "[server] max_body must be an integer of at least 1, got 0"),
        ('[server]\nhost = ""', '[server] host must be a non-empty string, got ""'),
        ('[server]\npublic_url = "ngrok"', "[server] public_url must be an http or https URL"),
        (
            "[storage]\nkeep_events_days = -1",
            "[storage] keep_events_days must be an integer of at least 0, got -1",
        ),
        ('[storage]\nmedia_dir = ""', "[storage] media_dir must be a non-empty path"),
        ("[storage]\ndatabase = 3", "[storage] database must be a non-empty path, got 3"),
        ("[wapi]\ntimeout = 0", "[wapi] timeout must be a finite number greater than 0, got 0"),
        (
            "[wapi]\ntimeout = true",
            "[wapi] timeout must be a finite number greater than 0, got true",
        ),
        ("[wapi]\ntimeout = nan", "[wapi] timeout must be a finite number greater than 0, got nan"),
        (
            '[wapi]\nbase_url = "ftp://api.w-api.app"',
            '[wapi] base_url must be an http or https URL, got "ftp://api.w-api.app"',
        ),
        ('[whatsapp]\ncdn_base_url = "https://"', "[whatsapp] cdn_base_url must be an http"),
        ('[ngrok]\napi_url = "localhost:4040"', "[ngrok] api_url must be an http or https URL"),
        (
            "[downloads]\nmax_attempts = 0",
            "[downloads] max_attempts must be an integer of at least 1",
        ),
        (
            "[downloads]\nbackoff_initial = -1.5",
            "[downloads] backoff_initial must be a finite number greater than 0, got -1.5",
        ),
        (
            "[downloads]\nbackoff_initial = 10\nbackoff_max = 5",
            "[downloads] backoff_max must be at least backoff_initial (10), got 5",
        ),
        (
            "[downloads]\ndownload_from_me = 1",
            "[downloads] download_from_me must be true or false, got 1",
        ),
        ("[downloads]\nsources = []", "[downloads] sources must be a non-empty list"),
        ('[downloads]\nsources = ["s3"]', '[downloads] sources must be a non-empty list of "wapi"'),
        (
            '[downloads]\nsources = ["cdn", "cdn"]',
            '[downloads] sources must be a non-empty list of "wapi" and/or "cdn", each at most '
            'once, got ["cdn", "cdn"]',
        ),
        ('[downloads]\nsources = "cdn"', "[downloads] sources must be a non-empty list"),
        ("[server]\nprot = 8000", "unknown key [server] prot (did you mean port?)"),
        ("[sever]\nport = 8000", "unknown table [sever] (did you mean server?)"),
        ("[metrics]\nenabled = true", "unknown table [metrics]"),
        ("port = 8000", "unknown key port"),
        ("server = 5", "[server] must be a table, got an integer"),
        ('[[instances]]\ntoken = "t"\nclient = "1"', "[[instances]] #1 has no id"),
        ('[[instances]]\nid = "A"\ntoken = "t"', "[[instances]] #1 has no client"),
        ('[[instances]]\nid = ""\ntoken = "t"\nclient = "1"', "[[instances]] #1 id must be"),
        (
            '[[instances]]\nid = "A"\ntoken = "t"\nclient = true',
            "[[instances]] #1 client must be a number or a name",
        ),
        (
            '[[instances]]\nid = "A"\ntoken = "t"\nclient = "../etc"',
            "[[instances]] #1 client must be a number or a name of letters, digits, '-', '_' "
            "and '.', got \"../etc\"",
        ),
        (
            '[[instances]]\nid = "A"\ntoken = "t"\nclient = "1"\ncolor = "red"',
            "unknown key [[instances]] #1 color",
        ),
        (
            '[instances]\nid = "A"',
            "instances must be an array of [[instances]] tables, got a table",
        ),
        ('instances = ["A"]', "[[instances]] #1 must be a table, got a string"),
    ],
)
def test_a_wrong_value_names_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)

    assert message.startswith(f"{tmp_path / 'mediamon.toml'}: ")
    assert expected in message


def test_an_instance_without_a_token_is_named_by_number(tmp_path: Path) -> None:
    text = ONE_INSTANCE + '[[instances]]\nid = "B"\nclient = "3"\n'

    message = config_error(tmp_path, text)

    assert message.endswith("mediamon.toml: [[instances]] #2 has no token")


def test_a_duplicate_instance_id_names_both_entries(tmp_path: Path) -> None:
    text = ONE_INSTANCE + ONE_INSTANCE.replace(TOKEN, "other")

    message = config_error(tmp_path, text)

    assert message.endswith('[[instances]] #2 id "3B6XIW-ZTS923-GEAY6V" repeats #1')


def test_invalid_toml_gives_line_and_column(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[server]\nhost = "127.0.0.1"\nport = \n')

    assert message.startswith(f"{tmp_path / 'mediamon.toml'}: invalid TOML: ")
    assert "line 3" in message
    assert "column" in message


def test_a_missing_file_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as caught:
        load_config(Path("mediamon.toml"))

    assert str(caught.value) == (
        "mediamon.toml: no such file; create one (see mediamon.toml.example) or pass --config PATH"
    )


def test_an_unreadable_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    # Patched rather than chmod-ed: the tests may run as root, which reads anything.
    monkeypatch.setattr(Path, "read_bytes", refuse)

    with pytest.raises(ConfigError, match=r"mediamon\.toml: cannot read it \(Permission denied\)$"):
        load_config(path)


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_config(tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mediamon.toml"
    path.write_bytes(b'[server]\nhost = "caf\xe9"\n')

    with pytest.raises(ConfigError, match=r"mediamon\.toml: not UTF-8 text"):
        load_config(path)


def test_parse_config_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^demo\.toml: \[server\] port must be"):
        parse_config({"server": {"port": -1}}, tmp_path, source="demo.toml")

    with pytest.raises(ConfigError, match=r"^<config>: unknown key \[wapi\] timeuot"):
        parse_config({"wapi": {"timeuot": 1}}, tmp_path)


def test_a_long_value_is_shortened_to_keep_one_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, f'[server]\nport = "{"9" * 500}"')

    assert len(message) < 200 + len(str(tmp_path))


# --- secrets -------------------------------------------------------------------------------


def test_token_and_secret_stay_out_of_repr(tmp_path: Path) -> None:
    text = f'[server]\nsecret = "{SECRET}"\n' + ONE_INSTANCE

    config = load_config(write(tmp_path, text))

    assert TOKEN not in repr(config)
    assert TOKEN not in repr(config.instances[0])
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.server)


def test_secrets_lists_every_token_and_the_server_secret(tmp_path: Path) -> None:
    data = {
        "server": {"secret": SECRET},
        "instances": [
            {"id": "A", "token": TOKEN, "client": "1"},
            {"id": "B", "token": "second-token", "client": "2"},
        ],
    }

    config = parse_config(data, tmp_path)

    assert set(config.secrets) == {TOKEN, "second-token", SECRET}
    assert isinstance(config.secrets, tuple)


@pytest.mark.parametrize(
    ("text", "leaked", "expected"),
    [
        (
            '[[instances]]\nid = "A"\ntoken = 987654321\nclient = "1"',
            "987654321",
            "[[instances]] #1 token must be a non-empty string, got an integer",
        ),
        (
            '[[instances]]\nid = "A"\ntoken = ["tok-in-a-list"]\nclient = "1"',
            "tok-in-a-list",
            "[[instances]] #1 token must be a non-empty string, got an array",
        ),
        (
            '[[instances]]\nid = "A"\ntoken = ""\nclient = "1"',
            None,
            "[[instances]] #1 token must be a non-empty string, got an empty string",
        ),
        (
            "[server]\nsecret = 424242",
            "424242",
            "[server] secret must be a string, got an integer",
        ),
        (
            f'[[instances]]\nid = "A"\ntokne = "{TOKEN}"\nclient = "1"',
            TOKEN,
            "unknown key [[instances]] #1 tokne (did you mean token?)",
        ),
        (
            f'[server]\nsecret = "{SECRET}"\n' + ONE_INSTANCE + "[wapi]\ntimeout = -1",
            SECRET,
            "[wapi] timeout must be a finite number greater than 0, got -1",
        ),
    ],
)
def test_no_error_shows_a_token_or_secret(
    tmp_path: Path, text: str, leaked: str | None, expected: str
) -> None:
    message = config_error(tmp_path, text)

    assert expected in message
    if leaked is not None:
        assert leaked not in message
    assert TOKEN not in message


# --- the shipped example -------------------------------------------------------------------


def test_the_example_file_loads_and_matches_the_defaults() -> None:
    config = load_config(EXAMPLE)
    defaults = parse_config({}, EXAMPLE.parent)

    assert len(config.instances) == 1
    assert config.instances[0].token
    assert dataclasses.replace(config, path=None, instances=()) == defaults
