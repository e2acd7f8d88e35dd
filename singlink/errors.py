"""The one exception type the command line turns into a one-line message and exit status 2."""


class UsageError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it.

    ``exit_now``: the process holds a thread it had to give up on inside native code (Ray's
    connection attempt); the command line then leaves with ``os._exit`` after the message, since
    interpreter shutdown under such a thread can crash the process (signal 11) instead of exit 2."""

    def __init__(self, message: str, *, exit_now: bool = False):
        super().__init__(message)
        self.exit_now = exit_now
