"""Text cleaning applied to every document before dedup and tokenization."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_text"]

# C0/C1 control characters except tab and newline, DEL, and lone surrogates (which
# json.loads lets through from "\ud800" escapes but no tokenizer can encode).
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """NFC-normalize, turn CRLF/CR into LF, and drop control characters and lone surrogates.

    The checks come first because most documents need none of the rewrites and
    the checks are much cheaper than the rewrites.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _UNWANTED.search(text) is not None:
        text = _UNWANTED.sub("", text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text
