"""APA tables in a Word document a journal accepts (python-docx).

Layout rules (APA Publication Manual, 7th ed., sec. 7.8-7.14), and what this module does for each:

* table number in bold, title in italics on its own line below it, both kept with the table;
* horizontal rules only: above and below the header, below the last row, and under each
  spanning header, which is centred over (merged across) its columns;
* column widths from the content (text measured in Times, :mod:`.office`), numbers right-aligned
  so equal decimals line up; a table wider than a portrait page goes on a landscape section;
* header rows repeat on every page (``w:tblHeader``) and rows never split across pages
  (``w:cantSplit``); a short table is kept on one page;
* "*Note.*" and the note text in the table's own font size.

Tables follow each other without page breaks; a new section (and page) starts only where the
orientation changes, so the set takes as few pages as its content needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml.etree import SubElement

from ..study.io import atomic_path
from .office import longest_word_pt, reproducible_zip, text_width_pt

FONT = "Times New Roman"
BODY_PT = 9.0  # table body, headers and notes
TITLE_PT = 10.0  # table number and title
PAGE_W_IN, PAGE_H_IN = 8.5, 11.0  # US Letter, as most journals' submission templates
MARGIN_IN = 1.0
CELL_PAD_PT = 4.0  # left and right cell margin
KEEP_TOGETHER_ROWS = 40
PORTRAIT_WRAP_SHARE = 0.7  # portrait if no column must shrink below this share of its one-line width  # tables up to this many rows are kept on one page


@dataclass(frozen=True)
class TableLayout:
    """Where and how wide a table is set."""

    widths_pt: tuple[float, ...]
    landscape: bool
    font_pt: float


def portrait_width_pt() -> float:
    return (PAGE_W_IN - 2 * MARGIN_IN) * 72


def landscape_width_pt() -> float:
    return (PAGE_H_IN - 2 * MARGIN_IN) * 72


def column_widths(header_rows: Sequence[Sequence[tuple[str, int]]], body: Sequence[Sequence[str]],
                  numeric: Sequence[bool], available_pt: float, font_pt: float) -> tuple[list[float], bool]:
    """Widths (points) from the content; text columns wrap (down to their longest word) when too wide.

    ``header_rows`` are runs of ``(label, span)``; a spanning label wider than its columns
    widens them evenly. Returns the widths and whether they fit ``available_pt``.
    """
    n = len(numeric)
    pad = 2 * CELL_PAD_PT + 2.0
    natural = [0.0] * n
    minimum = [0.0] * n
    for row in body:
        for j, text in enumerate(row):
            natural[j] = max(natural[j], text_width_pt(text, font_pt) + pad)
            minimum[j] = max(minimum[j], (text_width_pt(text, font_pt) if numeric[j]
                                          else longest_word_pt(text, font_pt)) + pad)
    last = header_rows[-1] if header_rows else []
    j = 0
    for label, span in last:  # column headers (one per column), may wrap at spaces
        for k in range(j, j + span):
            natural[k] = max(natural[k], text_width_pt(label, font_pt, bold=True) / span + pad)
            minimum[k] = max(minimum[k], longest_word_pt(label, font_pt, bold=True) / span + pad)
        j += span
    for row in header_rows[:-1]:  # spanning headers: widen their columns evenly if needed
        j = 0
        for label, span in row:
            need = text_width_pt(label, font_pt, bold=True) + pad
            have = sum(natural[j:j + span])
            if label and need > have:
                for k in range(j, j + span):
                    natural[k] += (need - have) / span
                    minimum[k] = max(minimum[k], natural[k]) if numeric[k] else minimum[k]
            j += span
    widths = list(natural)
    if sum(widths) > available_pt:
        # cap the wrapping (text) columns at one width c, the largest that fits: the longest
        # columns wrap first, short ones keep their natural width (never below their longest word)
        def capped(c: float) -> list[float]:
            return [w if numeric[k] else max(minimum[k], min(w, c)) for k, w in enumerate(natural)]

        low, high = 0.0, max(natural)
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if sum(capped(mid)) <= available_pt else (low, mid)
        widths = capped(low)
    fits = sum(widths) <= available_pt + 0.5
    if not fits:  # still too wide: shrink every column proportionally (text will wrap)
        scale = available_pt / sum(widths)
        widths = [w * scale for w in widths]
    return widths, fits


def plan_layout(header_rows: Sequence[Sequence[tuple[str, int]]], body: Sequence[Sequence[str]],
                numeric: Sequence[bool]) -> TableLayout:
    """Portrait when the table fits the portrait text width, else landscape (a smaller font if needed)."""
    widths, fits = column_widths(header_rows, body, numeric, portrait_width_pt(), BODY_PT)
    natural = column_widths(header_rows, body, numeric, 1e9, BODY_PT)[0]
    modest = all(w >= PORTRAIT_WRAP_SHARE * n for w, n in zip(widths, natural))
    if fits and modest:  # portrait, a text column wrapping a little: no section break, fewer pages
        return TableLayout(tuple(widths), False, BODY_PT)
    for size in (BODY_PT, BODY_PT - 1):
        widths, fits = column_widths(header_rows, body, numeric, landscape_width_pt(), size)
        if fits:
            return TableLayout(tuple(widths), True, size)
    return TableLayout(tuple(widths), True, BODY_PT - 1)


def _header_rows(table: Any) -> list[list[tuple[str, int]]]:
    rows = []
    if any(c.group for c in table.columns):
        rows.append(table.groups())
    rows.append([(c.header, 1) for c in table.columns])
    return rows


def write_docx(tables: Iterable[Any], path: str | os.PathLike, *, heading: str = "Tables") -> Path:
    """The APA tables (:class:`~fidelitymed.report.tables.ReportTable`) in one Word document."""
    import docx
    from docx.enum.section import WD_SECTION
    from docx.shared import Pt

    path = Path(path)
    document = docx.Document()
    normal = document.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(TITLE_PT)
    _east_asian_font(normal)
    normal.paragraph_format.space_before = Pt(0)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.line_spacing = 1.0
    section = document.sections[0]
    _set_page(section, landscape=False)
    head = document.add_paragraph()
    run = head.add_run(heading)
    run.bold = True
    run.font.size = Pt(12)
    head.paragraph_format.space_after = Pt(6)
    landscape = False
    first = True
    for t in tables:
        formatted = t.formatted()
        header_rows = _header_rows(t)
        body = [[str(v) for v in row] for row in formatted.itertuples(index=False)]
        numeric = [c.kind != "text" for c in t.columns]
        layout = plan_layout(header_rows, body, numeric)
        if layout.landscape != landscape:
            section = document.add_section(WD_SECTION.NEW_PAGE)
            _set_page(section, landscape=layout.landscape)
            landscape = layout.landscape
            first = True
        number = document.add_paragraph()
        number.paragraph_format.space_before = Pt(0 if first else 14)
        number.paragraph_format.keep_with_next = True
        r = number.add_run(t.number)
        r.bold = True
        title = document.add_paragraph()
        title.paragraph_format.keep_with_next = True
        title.paragraph_format.space_after = Pt(4)
        title.add_run(t.title).italic = True
        _add_table(document, t, header_rows, body, numeric, layout)
        if t.note:
            note = document.add_paragraph()
            note.paragraph_format.space_before = Pt(3)
            lead = note.add_run("Note.")
            lead.italic = True
            lead.font.size = Pt(layout.font_pt)
            note.add_run(" " + t.note).font.size = Pt(layout.font_pt)
        first = False
    with atomic_path(path) as tmp:
        document.save(str(tmp))
        reproducible_zip(tmp)
    return path


def _east_asian_font(style: Any) -> None:
    """Set the font for every script, so Word does not fall back to the theme font."""
    from docx.oxml.ns import qn

    rpr = style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attr), FONT)


def _set_page(section: Any, *, landscape: bool) -> None:
    from docx.enum.section import WD_ORIENT
    from docx.shared import Inches

    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    w, h = (PAGE_H_IN, PAGE_W_IN) if landscape else (PAGE_W_IN, PAGE_H_IN)
    section.page_width, section.page_height = Inches(w), Inches(h)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Inches(MARGIN_IN))


def _add_table(document: Any, t: Any, header_rows: list[list[tuple[str, int]]], body: list[list[str]],
               numeric: list[bool], layout: TableLayout) -> None:
    from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Pt

    n_head = len(header_rows)
    n_cols = len(numeric)
    table = document.add_table(rows=n_head + len(body), cols=n_cols)
    table.alignment = WD_TABLE_ALIGNMENT.LEFT
    table.autofit = False
    _fixed_layout(table, layout.widths_pt)
    rows = table.rows  # Row.cells is linear per row; Table.cell(i, j) rescans the table each call
    keep = len(body) <= KEEP_TOGETHER_ROWS
    size = Pt(layout.font_pt)
    p_tag, ppr_tag, keep_next_tag, jc_tag, r_tag, rpr_tag, b_tag, sz_tag, t_tag = (
        qn(f"w:{t}") for t in ("p", "pPr", "keepNext", "jc", "r", "rPr", "b", "sz", "t"))
    val_attr, space_attr = qn("w:val"), qn("xml:space")
    half_points = str(int(round(layout.font_pt * 2)))
    justify = {WD_ALIGN_PARAGRAPH.LEFT: "left", WD_ALIGN_PARAGRAPH.RIGHT: "right",
               WD_ALIGN_PARAGRAPH.CENTER: "center"}

    def put(cell: Any, text: str, *, bold: bool = False, align: Any = WD_ALIGN_PARAGRAPH.LEFT,
            keep_next: bool = False) -> None:
        if (not _DIRECT_CELL_XML or any(ch in text for ch in "\t\n\r") or align not in justify
                or not float(layout.font_pt * 2).is_integer()):
            par = cell.paragraphs[0]
            par.alignment = align
            par.paragraph_format.keep_with_next = keep_next
            run = par.add_run(text)
            run.font.size = size
            run.bold = bold
            return
        # the XML python-docx's setters write, built directly: its get-or-add lookups cost ~1 ms a cell
        par = cell._tc.find(p_tag)
        ppr = SubElement(par, ppr_tag)
        keep_el = SubElement(ppr, keep_next_tag)
        if not keep_next:
            keep_el.set(val_attr, "0")
        SubElement(ppr, jc_tag).set(val_attr, justify[align])
        run = SubElement(par, r_tag)
        rpr = SubElement(run, rpr_tag)
        b = SubElement(rpr, b_tag)
        if not bold:
            b.set(val_attr, "0")
        SubElement(rpr, sz_tag).set(val_attr, half_points)
        if text:
            t_el = SubElement(run, t_tag)
            t_el.text = text
            if len(text.strip()) < len(text):      # as python-docx decides it
                t_el.set(space_attr, "preserve")

    for h, runs in enumerate(header_rows):
        cells = rows[h].cells
        j = 0
        spanning = h < n_head - 1
        for label, span in runs:
            cell = cells[j]
            if span > 1:
                cell = cell.merge(cells[j + span - 1])
            align = (WD_ALIGN_PARAGRAPH.CENTER if spanning else
                     WD_ALIGN_PARAGRAPH.RIGHT if numeric[j] and span == 1 else WD_ALIGN_PARAGRAPH.LEFT)
            put(cell, label, keep_next=True, align=align)
            cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.BOTTOM
            if spanning and label:
                _border(cell, bottom=True)
            j += span
    for i, values in enumerate(body):
        cells = rows[n_head + i].cells
        last = i == len(body) - 1
        for j, (cell, text) in enumerate(zip(cells, values)):
            put(cell, text, align=WD_ALIGN_PARAGRAPH.RIGHT if numeric[j] else WD_ALIGN_PARAGRAPH.LEFT,
                keep_next=keep and (not last or bool(t.note)))  # a short table stays with its note
    for k, row in enumerate(rows):
        _row_flags(row, header=k < n_head)
    for cell in rows[0].cells:
        _border(cell, top=True)
    for cell in rows[n_head - 1].cells:
        _border(cell, bottom=True)
    for cell in rows[len(rows) - 1].cells:
        _border(cell, bottom=True)
    for row in rows:  # python-docx sets tcW only on some paths: set every cell's width
        for cell, w in zip(row.cells, _cell_widths(row, layout.widths_pt)):
            cell.width = Pt(w)


#: table cells written as XML directly (False: through python-docx's setters; the same bytes, tested)
_DIRECT_CELL_XML = True


def _cell_widths(row: Any, widths: Sequence[float]) -> list[float]:
    """Width of each (possibly merged) cell of ``row``: the sum of the grid columns it spans."""
    from docx.oxml.ns import qn

    out, j = [], 0
    for tc in row._tr.findall(qn("w:tc")):
        span_el = tc.find(qn("w:tcPr") + "/" + qn("w:gridSpan"))
        span = int(span_el.get(qn("w:val"))) if span_el is not None else 1
        out.append(sum(widths[j:j + span]))
        j += span
    # row.cells repeats a merged cell once per grid column it covers
    expanded = []
    for w, tc in zip(out, row._tr.findall(qn("w:tc"))):
        span_el = tc.find(qn("w:tcPr") + "/" + qn("w:gridSpan"))
        expanded += [w] * (int(span_el.get(qn("w:val"))) if span_el is not None else 1)
    return expanded


def _fixed_layout(table: Any, widths_pt: Sequence[float]) -> None:
    """Fixed column widths (``w:tblLayout fixed``, grid and table width), small cell margins."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tbl_pr = table._tbl.tblPr  # table.autofit = False has set w:tblLayout to fixed
    width = tbl_pr.find(qn("w:tblW"))
    if width is None:
        width = OxmlElement("w:tblW")
        tbl_pr.append(width)
    width.set(qn("w:type"), "dxa")
    width.set(qn("w:w"), str(int(round(sum(widths_pt) * 20))))
    margins = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), str(int(CELL_PAD_PT * 20)))
        el.set(qn("w:type"), "dxa")
        margins.append(el)
    _insert_in_order(tbl_pr, margins, ("w:tblLook", "w:tblCaption", "w:tblDescription", "w:tblPrChange"))
    for col, w in zip(table._tbl.tblGrid.findall(qn("w:gridCol")), widths_pt):
        col.set(qn("w:w"), str(int(round(w * 20))))


def _row_flags(row: Any, *, header: bool) -> None:
    """``w:cantSplit`` on every row; ``w:tblHeader`` (repeat on each page) on header rows."""
    from docx.oxml import OxmlElement

    tr_pr = row._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:cantSplit"))
    if header:
        tr_pr.append(OxmlElement("w:tblHeader"))


def _border(cell: Any, *, top: bool = False, bottom: bool = False) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        _insert_in_order(tc_pr, borders, ("w:shd", "w:noWrap", "w:tcMar", "w:textDirection", "w:tcFitText",
                                          "w:vAlign", "w:hideMark", "w:headers", "w:cellIns", "w:cellDel",
                                          "w:cellMerge", "w:tcPrChange"))
    for edge, on in (("top", top), ("bottom", bottom)):
        if not on or borders.find(qn(f"w:{edge}")) is not None:
            continue
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), "single")
        el.set(qn("w:sz"), "6")
        el.set(qn("w:space"), "0")
        el.set(qn("w:color"), "000000")
        # schema order inside w:tcBorders: top, start/left, bottom, ...
        if edge == "top":
            borders.insert(0, el)
        else:
            borders.append(el)


def _insert_in_order(parent: Any, child: Any, successors: Sequence[str]) -> None:
    """Insert ``child`` before the first existing element named in ``successors`` (OOXML schema order)."""
    from docx.oxml.ns import qn

    for name in successors:
        found = parent.find(qn(name))
        if found is not None:
            found.addprevious(child)
            return
    parent.append(child)
