"""Short summaries of names and texts that come from callers, for error messages.

Why: an error that lists every offending name grows with the input. A request with 10,000
unknown columns, or one column named with 100 kB of text, made the predictor's status overflow
gRPC's 16 KiB metadata limit, and the caller got "received metadata size exceeds hard limit"
instead of the error. Messages therefore name at most `limit` names, each cut to `width`
characters, and count the rest. The predictor's input errors and the trainer's errors share
these rules.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Most names a message lists.
NAMES_LIMIT = 20
#: Most characters of one name a message shows.
NAME_WIDTH = 64
#: Marks where a text was cut.
CUT_MARK = "…"


def shorten(text: str, width: int = NAME_WIDTH) -> str:
    """`text`, or its first `width - 1` characters and `CUT_MARK` when it is longer."""
    if len(text) <= width:
        return text
    return text[: max(width - len(CUT_MARK), 0)] + CUT_MARK


def summarise_names(names: Sequence[str], limit: int = NAMES_LIMIT, width: int = NAME_WIDTH) -> str:
    """The first `limit` names, quoted and each cut to `width` characters, then how many more:
    `'a', 'b' and 9998 more`."""
    shown = ", ".join(repr(shorten(name, width)) for name in names[:limit])
    rest = len(names) - limit
    if rest <= 0:
        return shown
    return f"{shown} and {rest} more" if shown else f"{rest} names"
