"""Log lines the router writes cannot be forged: control characters in them are escaped.

Run names, error texts and anything else a client or provider controls can carry a newline (a forged
log line), a carriage return or a terminal escape. The router's loggers carry one filter that escapes
every control character of the finished message, so no call site has to remember to.
"""

from __future__ import annotations

import logging
import unicodedata

# C0, DEL and C1 controls, and the Unicode line and paragraph separators some log readers split on.
_ESCAPES = {
    code: ascii(chr(code))[1:-1]
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
    if unicodedata.category(chr(code)) in {"Cc", "Zl", "Zp"}
}


def escape_controls(text: str) -> str:
    """`text` with every control character written as its Python escape (`\\n`, `\\x1b`, `\\u2028`)."""
    return text.translate(_ESCAPES)


class EscapeControlCharacters(logging.Filter):
    """Rewrites a record's message with its control characters escaped (arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; escapes its message where it needs it."""
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


_FILTER = EscapeControlCharacters()


def router_logger(name: str) -> logging.Logger:
    """The logger `name`, with control characters escaped in everything it writes."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
