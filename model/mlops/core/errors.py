"""The one exception type a user sees: the CLI prints its message on one line and exits non-zero."""


# `mlops train` under torchrun, when a worker died without an error of the command's own (killed out of memory, its
# node lost, or crashed): a retry may get past it, so the release workflow retries this code, never 1 or 2.
PROCESSES_LOST = 75


class MlopsError(Exception):
    """A problem the user can fix. The message names the bad value and what to do about it."""

    exit_code = 1


class GateFailed(MlopsError):
    """The candidate did not pass the quality gate; nothing downstream may run."""

    exit_code = 3
