"""The one exception type for errors a user can cause and fix."""


class CoolfusionError(Exception):
    """A problem the user can fix; `str(error)` is one line written for them.

    The CLI prints it and exits with `exit_code`; the chat UI shows it in place.
    Anything else escaping the engine is a bug.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(CoolfusionError):
    """models.toml is wrong: the message names the file, the key and the fix."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)
