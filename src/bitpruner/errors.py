"""Exceptions with one-line messages that name the file, field or value at fault."""


class BitprunerError(Exception):
    """Base class: the CLI and stage entry points print these as one line and exit non-zero."""


class ConfigError(BitprunerError, ValueError):
    """A config key holds a value outside what the stage accepts."""


class DataError(BitprunerError, ValueError):
    """A data set file is missing or malformed."""


class TraceError(BitprunerError, ValueError):
    """A simulator trace is missing, malformed or out of range."""
