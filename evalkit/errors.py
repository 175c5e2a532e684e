"""The one error type a user can cause. The CLI prints its message on one line and exits 2."""


class EvalkitError(Exception):
    """A problem the user can fix: a bad task file, a missing data file, an unknown model.

    The message must say what is wrong and what to do about it, on one line.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class InvalidRunError(EvalkitError):
    """The run finished and wrote its files, but its numbers must not be used (e.g. NaN log-likelihoods).

    Exit code 3, so a script can tell it from a user error (2, nothing was run) and from a regression
    found by `compare` (1).
    """

    exit_code = 3

    def __init__(self, message: str, run_dir=None, results=None):
        super().__init__(message)
        self.run_dir, self.results = run_dir, results


class ScoringRefused(EvalkitError):
    """The adapter will not score log-likelihoods (a served model that failed the log-prob trust probe).

    The engine stops the multiple-choice or perplexity task with this line and still runs the
    run's generation tasks.
    """
