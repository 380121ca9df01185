"""The configuration file: what it accepts, and mistakes refused with file:line and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from filters.sources import Format


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.yaml"
    path.write_text(text)
    return path


def test_sources_are_read_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir: state
lists:
  fetch: {timeout_s: 5, max_mb: 10}
  sources:
    - {name: porn, format: hosts, category: adult, path: lists/porn.hosts}
    - {name: easylist, format: adblock, category: ads, url: "https://lists.example/easylist.txt"}
""",
    )
    config = load_config(path)
    assert config.data_dir == tmp_path / "state"
    assert config.index_path == tmp_path / "state" / "index" / "filters.idx"
    assert [(s.name, s.format, s.category) for s in config.sources] == [
        ("porn", Format.HOSTS, "adult"),
        ("easylist", Format.ADBLOCK, "ads"),
    ]
    assert config.sources[0].location == str(tmp_path / "lists" / "porn.hosts")
    assert config.sources[1].is_url
    assert config.fetch.timeout_s == 5 and config.fetch.max_bytes == 10 * 1024 * 1024


def test_the_embedded_demo_configuration_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("APPLIANCE_CONFIG", raising=False)
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path))
    config = load_config()
    assert config.data_dir == tmp_path
    assert {s.format for s in config.sources} == set(Format)
    for source in config.sources:
        assert Path(source.location).exists(), source


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "lists:\n  sources:\n    - {name: a, format: hostz, category: c, path: x}\n",
            3,
            "unknown format 'hostz'",
        ),
        ("lists:\n  sources:\n    - name: a\n      format: hosts\n      path: x\n", 3, "missing 'category'"),
        (
            "lists:\n  sources:\n    - {name: a, format: hosts, category: c}\n",
            3,
            "exactly one of path or url",
        ),
        ("lists:\n  sources:\n    - {name: a, format: hosts, category: c, url: ftp://x}\n", 3, "http(s)"),
        ("lists:\n  sourcs: []\n", 2, "unknown key 'sourcs'"),
        ("data_dir: var\nlist: {}\n", 2, "unknown key 'list'"),
        ("lists:\n  sources:\n    - {name: a, format: ut1, category: c, url: 'https://x/y'}\n", 3, "folders"),
        (
            "lists:\n  sources:\n    - {name: a, format: hosts, category: c, path: x}\n"
            "    - {name: a, format: hosts, category: c, path: y}\n",
            4,
            "second source named 'a'",
        ),
        ("lists:\n  fetch:\n    timeout_s: -1\n", 3, "timeout_s"),
        ("lists: [1, 2\n", 2, "not valid YAML"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("policy:\n  help_services: [https://www.childline.org.uk/]\n", 2, "not a domain name"),
        ("policy:\n  timezone: 3\n", 2, "non-empty text"),
        ("policy:\n  profils: x.yaml\n", 2, "did you mean 'profiles'"),
        ("data_dir: a\ndata_dir: b\n", 2, "'data_dir' appears twice"),
    ],
)
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert words in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_the_dns_section_and_devices_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
dns:
  listen: ["192.168.50.1:53", "[fd00:50::1]:53"]
  upstreams: ["9.9.9.9", "[2620:fe::fe]:53"]
  upstream_timeout_s: 0.5
  cache: {min_ttl: 5, serve_stale_s: 600}
  blocked_ttl: 5
  block_page_addresses: ["192.168.50.1", "fd00:50::1"]
  rate_limit: {per_second: 50, burst: 500}
  dhcp_leases: leases/dnsmasq.leases
devices:
  - {name: room1-pc1, mac: "DC-A6-32-01-02-03", profile: 10-12, managed: true}
  - {name: homework-room, network: 192.168.50.64/27, profile: 13-17}
""",
    )
    config = load_config(path)
    dns = config.dns
    assert dns.listen == ("192.168.50.1:53", "[fd00:50::1]:53")
    assert dns.try_timeout_s == 0.5 and dns.cache.min_ttl == 5 and dns.cache.stale_s == 600
    assert dns.cache.max_ttl == 86_400  # the default for what is not given
    assert (dns.block.ttl, dns.block.page_v4, dns.block.page_v6) == (5, ("192.168.50.1",), ("fd00:50::1",))
    assert (dns.rate_limit.per_second, dns.rate_limit.burst) == (50, 500)
    assert dns.leases == tmp_path / "leases" / "dnsmasq.leases"
    assert config.events_path == config.data_dir / "appliance.sqlite"
    assert [(d.name, d.mac, d.network, d.managed) for d in config.devices] == [
        ("room1-pc1", "dc:a6:32:01:02:03", None, True),
        ("homework-room", None, "192.168.50.64/27", False),
    ]
    assert config.device_lines == {"room1-pc1": 12, "homework-room": 13}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("dns:\n  listen: [localhost:53]\n", 2, "'localhost:53' is not an address like 192.168.1.1:53"),
        ("dns:\n  upstreams: ['9.9.9.9:99999']\n", 2, "is not an address"),
        ("dns:\n  upstream_timeout_s: 0\n", 2, "dns.upstream_timeout_s must be a number from 0.05 to 10"),
        ("dns:\n  cache: {min_tll: 5}\n", 2, "did you mean 'min_ttl'"),
        ("dns:\n  rate_limit: {per_second: -1}\n", 2, "dns.rate_limit.per_second must be a number"),
        ("dns:\n  block_page_addresses: [appliance.lan]\n", 2, "not an address like 192.168.1.1"),
        ("dns:\n  lisen: []\n", 2, "did you mean 'listen'"),
        ("devices:\n  - {name: pc, profile: kids}\n", 2, "device 'pc': give exactly one of mac or network"),
        ("devices:\n  - {name: pc, profile: kids, mac: 'zz:zz'}\n", 2, "'zz:zz' is not a MAC address"),
        ("devices:\n  - {name: pc, profile: kids, network: 10.0.0.300}\n", 2, "is not an address or network"),
        ("devices:\n  - {name: pc, mac: 'aa:bb:cc:dd:ee:ff'}\n", 2, "a device needs a name and a profile"),
        (
            "devices:\n  - {name: pc, profile: a, network: 10.0.0.1}\n"
            "  - {name: pc, profile: b, network: 10.0.0.2}\n",
            3,
            "a second device named 'pc'",
        ),
    ],
)
def test_dns_and_device_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}:")
    assert words in str(caught.value)


def test_check_warns_of_a_dashboard_served_unsafely(tmp_path: Path) -> None:
    from appliance.checks import dashboard_warnings

    def warnings(text: str) -> list[str]:
        path = tmp_path / "appliance.yaml"
        path.write_text(f"data_dir: {tmp_path}\n{text}", encoding="utf-8")
        return dashboard_warnings(load_config(path))

    assert warnings("") == []  # the demo: loopback only
    (plain,) = warnings("dashboard:\n  listen: 192.168.50.1:80\n")
    assert "plain HTTP" in plain and "secure_cookies" in plain
    assert warnings("dashboard:\n  listen: 192.168.50.1:443\n  secure_cookies: true\n") == []
    (everyone,) = warnings("dashboard:\n  admin_networks: [0.0.0.0/0]\n")
    assert "every device reaches the staff pages" in everyone


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("sync:\n  url: ftp://hq.example/\n", 2, "sync.url must be head office's http(s):// address"),
        ("sync:\n  url: https://hq.example/\n  ring: canary centres\n", 3, "sync.ring: use letters"),
        ("sync:\n  url: https://hq.example/\n  jitter_minutes: -5\n", 3, "sync.jitter_minutes must be"),
        ("sync:\n  url: https://hq.example/\n  check_dns: sometimes\n", 3, "sync.check_dns must be true"),
        ("sync:\n  url: https://hq.example/\n  mirror: x\n", 3, "mirror"),
    ],
)
def test_sync_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}:") and words in str(caught.value)


def test_sync_settings_and_the_missing_root_warning(tmp_path: Path) -> None:
    from appliance.checks import sync_warnings

    path = write(
        tmp_path, "sync:\n  url: https://hq.example/lists/\n  trusted_root: root.json\n  ring: canary\n"
    )
    config = load_config(path)
    assert config.sync is not None and config.sync.url == "https://hq.example/lists"
    assert config.sync.ring == "canary" and config.sync.trusted_root == tmp_path / "root.json"
    assert config.set_dir is None  # nothing synced yet: the file's own lists
    (missing,) = sync_warnings(config)
    assert "root.json is missing" in missing
    (tmp_path / "root.json").write_text("{}")
    assert sync_warnings(config) == []


def test_a_centres_own_list_may_not_take_a_head_office_name(tmp_path: Path) -> None:
    (tmp_path / "mine.domains").write_text("a.example\n")
    path = write(
        tmp_path,
        "lists:\n  sources:\n    - {name: hq.mine, format: domains, category: adult, path: mine.domains}\n"
        "sync:\n  url: https://hq.example/\n",
    )
    with pytest.raises(ConfigError, match=r"appliance\.yaml:3: source 'hq\.mine': names starting hq\. are"):
        load_config(path)
