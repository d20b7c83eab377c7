"""The one exception type whose message is meant for the user.

Anything the user can fix (a missing file, a bad option, a corrupt download) raises
``DigitnetError`` with a single line that names the problem and the fix; the CLI prints
that line and exits non-zero instead of showing a traceback.
"""


class DigitnetError(Exception):
    """A problem the user can fix; ``str(error)`` is one line saying what and how."""
