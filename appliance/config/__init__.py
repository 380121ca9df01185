"""The appliance's configuration: appliance.yaml read and checked, one module per section, each with its
frozen settings and its parser; the checked-YAML reader every file is read with (`reader`); the shipped
list catalogue (`catalogue`). A leaf: it imports no other appliance package (but `appliance.net`'s
host:port helper), so the DNS filter, the proxy, the dashboard and the command line all sit on it.

Head office's set in force is not read here: `appliance.in_force.head_office` adds it to a `Config`.
"""

from appliance.config.devices import device_problems, staff_device_problem
from appliance.config.file import (
    ENV_CONFIG,
    ENV_DATA_DIR,
    INDEX_NAME,
    SYSTEM_CONFIG,
    Config,
    default_config_path,
    load_config,
)
from appliance.config.lists import HEAD_OFFICE_PREFIX, FetchSettings, parse_source
from appliance.config.policy import DEFAULT_HELP_SERVICES, PolicySettings
from appliance.config.reader import ConfigError

__all__ = [
    "DEFAULT_HELP_SERVICES",
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "HEAD_OFFICE_PREFIX",
    "INDEX_NAME",
    "SYSTEM_CONFIG",
    "Config",
    "ConfigError",
    "FetchSettings",
    "PolicySettings",
    "default_config_path",
    "device_problems",
    "load_config",
    "parse_source",
    "staff_device_problem",
]
