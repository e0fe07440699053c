"""The one exception type for errors a user can cause and fix."""


class CoolfusionError(Exception):
    """A problem the user can fix; `str(error)` is one line written for them.

    The CLI prints it and exits with `exit_code`; the chat UI shows it in place.
    Anything else escaping the engine is a bug.
    """

    model: str | None = None  # the fusion member whose model failed, where one did (a served one's server)

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(CoolfusionError):
    """models.toml is wrong: the message names the file, the key and the fix."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


def one_line(error: CoolfusionError | OSError) -> str:
    """What the user reads for an error they can fix."""
    return describe_os_error(error) if isinstance(error, OSError) else str(error)


def describe_os_error(error: OSError) -> str:
    """One line for a file-system error a user can fix: what went wrong, on which file.

    "No space left on device: /home/me/.cache/coolfusion-local/models/x.gguf"
    """
    reason = error.strerror or str(error) or type(error).__name__
    files = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{reason}: {' -> '.join(files)}" if files else reason
