"""The one exception type that reaches the user as a single clear line."""


class CnnlabError(Exception):
    """A problem with the user's input or environment.

    The message names what is wrong and how to fix it; the CLI prints it on one
    line and exits with status 2 instead of showing a traceback.
    """


class DataError(CnnlabError):
    """A dataset file is missing, corrupt or inconsistent."""


class ConfigError(CnnlabError):
    """A setting, model file or study file is invalid."""
