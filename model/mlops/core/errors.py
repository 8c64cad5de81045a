"""The one exception type a user sees: the CLI prints its message on one line and exits non-zero."""


class MlopsError(Exception):
    """A problem the user can fix. The message names the bad value and what to do about it."""

    exit_code = 1


class GateFailed(MlopsError):
    """The candidate did not pass the quality gate; nothing downstream may run."""

    exit_code = 3
