"""The one exception type that reaches the user as a single clear line."""


class CnnlabError(Exception):
    """A problem with the user's input or environment.

    The message names what is wrong and how to fix it; the CLI prints it on one
    line and exits with ``exit_code`` instead of showing a traceback: 2 for bad
    input, 1 for work that was tried and failed (a run that diverged, a file that
    could not be read), so that scripts can tell the two apart.
    """

    exit_code = 2


class DataError(CnnlabError):
    """A dataset file is missing, corrupt or inconsistent."""


class ConfigError(CnnlabError):
    """A setting, model file or study file is invalid."""


class RunFailed(CnnlabError):
    """The input was fine but the work failed (e.g. training diverged)."""

    exit_code = 1


class RunPruned(CnnlabError):
    """A search's pruner stopped a trial: finished by decision, not failed. Its message
    starts with "pruned"."""

    exit_code = 0
