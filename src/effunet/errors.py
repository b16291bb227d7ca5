"""The one exception type for errors a user can cause (bad input, bad config, unreachable source)."""


class EffunetError(Exception):
    """A user-facing error whose message names the offending file, URL or config key."""


class ConfigError(EffunetError):
    """The configuration does not match the schema or is internally inconsistent."""
