"""The one kind of error a user fixes: bad data, config, weights, a broken plug-in, wrong
predict inputs, a diverging recipe or an unsafe checkpoint.

A :class:`UserError` is printed as its message alone, without a traceback, by the job wrapper
(``workflow/scripts/_log.py``) and the CLI (``iman``); any other exception is a bug and keeps
its traceback. Every user-facing error class of the library derives from it (and from the
builtin it replaced, so ``except ValueError`` callers keep working).
"""


class UserError(Exception):
    """A problem the user must fix; the message says what is wrong and what to change."""
