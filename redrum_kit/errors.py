"""Exception types, one per domain.

Every message is meant to be shown to a musician as it is: it names the file
or the thing at fault and says what to do. Front ends catch `RedrumError`
and decide how to show it (a one-line CLI error, an OSC "error" reply, a
message in the browser).
"""


class RedrumError(Exception):
    """Base of every error a user can cause with bad input."""


class AudioError(RedrumError):
    """A file that cannot be used as audio for the requested operation."""


class LibraryError(RedrumError):
    """The oneshot library or a kit cannot do what was asked."""


class ModelError(RedrumError):
    """A model checkpoint is missing, damaged or does not match its config."""
