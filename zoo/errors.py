"""User-facing errors: bad input whose message names the problem and the fix.

The CLI prints them as one `error:` line and exits non-zero, with no traceback.
"""


class ZooError(ValueError):
    """Base of every error caused by what the user asked for (recipe, pattern, paths, options)."""
