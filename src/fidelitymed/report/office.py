"""What the DOCX and XLSX writers share: text widths for column sizing and reproducible Office zips.

Column widths are set from the content, so they are measured with the font the document uses:
the Adobe font metrics (AFM) of Times Roman / Times Bold that matplotlib ships. Word's Times
New Roman and LibreOffice's Liberation Serif have the same advance widths, so the widths hold in
both without reading any system font.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from functools import lru_cache
from pathlib import Path

# AFM glyph names of the non-ASCII characters the tables print
_GLYPHS = {"\u2212": "minus", "\u2032": "quotesingle", "\u2014": "emdash", "\u2013": "endash", "\u00b2": "twosuperior",
           "\u00b1": "plusminus", "\u00b7": "periodcentered", "\u2020": "dagger", "\u00d7": "multiply"}
# characters Times lacks (Word substitutes Symbol): their width in 1/1000 em
_FALLBACK = {"\u03b1": 631, "\u0394": 612, "\u2264": 549, "\u2265": 549, "\u2192": 987, "\u2248": 549}
_WIDE_DEFAULT = 600


@lru_cache(maxsize=4)
def _afm_widths(bold: bool) -> dict[str, int]:
    import matplotlib

    name = "ptmb8a.afm" if bold else "ptmr8a.afm"
    path = Path(matplotlib.get_data_path()) / "fonts" / "afm" / name
    widths: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        found = re.match(r"C (-?\d+) ; WX (\d+) ; N (\S+)", line)
        if found:
            code, wx, glyph = int(found[1]), int(found[2]), found[3]
            by_name[glyph] = wx
            if 32 <= code < 127:
                widths[chr(code)] = wx
    for char, glyph in _GLYPHS.items():
        if glyph in by_name:
            widths[char] = by_name[glyph]
    return widths


def text_width_pt(text: str, size_pt: float, *, bold: bool = False) -> float:
    """Advance width of ``text`` set in Times at ``size_pt`` points, in points."""
    widths = _afm_widths(bold)
    total = 0
    for char in text:
        if char in widths:
            total += widths[char]
        elif char in _FALLBACK:
            total += _FALLBACK[char]
        else:
            base = unicodedata.normalize("NFKD", char)[:1]
            total += widths.get(base, _WIDE_DEFAULT)
    return total * size_pt / 1000.0


def longest_word_pt(text: str, size_pt: float, *, bold: bool = False) -> float:
    """Width of the widest word: the narrowest a wrapping column can be."""
    words = str(text).split() or [""]
    return max(text_width_pt(w, size_pt, bold=bold) for w in words)


_FIXED_TIME = "2000-01-01T00:00:00Z"


def reproducible_zip(path: Path) -> None:
    """Rewrite an Office file with fixed entry times and document dates: same results -> same bytes."""
    with zipfile.ZipFile(path) as z:
        entries = [(info.filename, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + _FIXED_TIME.encode() + rb"\g<2>", data)
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
