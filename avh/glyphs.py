"""Text painted into a figure's pixels from renderings matplotlib made once, pixel for pixel
what it would draw there. Drawing only; public matplotlib API (fonts, Text, an Agg canvas).
"""
import numpy as np
from matplotlib import colors, font_manager, ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.figure import Figure

# Characters placed glyph by glyph: one glyph each, no ligatures among them in text fonts.
DIGITS = frozenset("0123456789+-.%<> ")
_CELL = 4  # a scratch cell's height, in ems: room for any glyph's ink above and below the pen
_CACHES = {}  # {(font properties, dpi): {"widths", "kerning", "renders", ...}}: TextPainter


class TextPainter:
    """Paints lines of text in the font, size and colour of a Text artist `like`, at its anchor
    and alignment (left, center or right; baseline, bottom, center or top), into RGBA pixels (an
    (H, W, 4) uint8 view of an Agg canvas, row 0 at the top). `like` keeps an empty text, so that
    matplotlib draws nothing there itself, and may move between paints.

    Why: matplotlib 3.11 lays a text out (HarfBuzz shaping, font fallback) and renders it glyph
    by glyph, in Python, each time it is drawn; a histogram's title, shares and peak were most
    of its event (~7 of 9-10 ms). A line whose words stay and whose numbers change is
    painted instead: the words rendered whole (ligatures, other scripts and fallback fonts as
    matplotlib draws them), the numbers glyph by glyph, each at the fraction of a pixel where it
    lands and laid out as matplotlib lays a line (hinted advances, kerning, the font's ascent
    and descent), blended as Agg blends: ~0.5 ms a title. tests/test_units.py compares the
    pixels with matplotlib's."""

    def __init__(self, like):
        self._like = like
        self._prop = like.get_fontproperties()
        self._dpi = like.figure.dpi
        *rgb, self._alpha = (round(255 * c)  # as Agg's rgba8
                             for c in colors.to_rgba(like.get_color(), like.get_alpha()))
        self._colour = 256 * np.array(rgb, np.int32)
        self._font = font_manager.get_font(font_manager.findfont(self._prop))
        # Shared by the painters of one font and resolution (a figure's histograms): drawn on
        # one thread at a time, as matplotlib's figures are.
        self._cache = _CACHES.setdefault((self._prop.copy(), self._dpi),
                                         {"widths": {}, "kerning": {}, "renders": {}})
        self._widths, self._kerning, self._renders = (
            self._cache[kind] for kind in ("widths", "kerning", "renders"))
        # _widths: {unit: (its advance, ascent and descent in pixels, its first and last glyph
        # index)};
        # _renders: {(unit, x phase, y phase): (its coverage, 0-255 (h, w, 1), its left
        # column and top row from the pen's whole pixel and the baseline's)}

    def paint(self, pixels, pieces):
        """Paint the line that is `pieces` (strings) one after the other; a piece of DIGITS only
        is placed glyph by glyph, any other piece whole."""
        units = [u for piece in pieces for u in (piece if set(piece) <= DIGITS else [piece]) if u]
        pens, pen = self._layout(units)
        ascent, descent = self._line_extent()
        for unit in units:
            _, up, down, *_ = self._widths[unit]
            ascent, descent = max(ascent, up), max(descent, down)
        x, y = self._like.get_transform().transform(self._like.get_unitless_position())
        x -= {"left": 0.0, "center": pen / 2, "right": pen}[self._like.get_ha()]
        # matplotlib's Text layout: a line's box is at least the font's ascent and descent high
        y += {"baseline": 0.0, "bottom": descent, "top": -ascent,
              "center": (descent - ascent) / 2}[self._like.get_va()]
        row, y_phase = _whole_and_phase(y)
        places = [_whole_and_phase(x + pen) for pen in pens]
        keys = [(unit, phase, y_phase) for unit, (_, phase) in zip(units, places)]
        self._render(keys)
        baseline = pixels.shape[0] - row  # display y is upwards
        for key, (col, _) in zip(keys, places):
            coverage, left, top = self._renders[key]
            self._blend(pixels, coverage, baseline + top, col + left)

    def _layout(self, units):
        """(each unit's pen from the line's start, the line's advance), in pixels."""
        self._measure(units)
        self._kern(units)
        pens, pen, before = [], 0.0, None
        for unit in units:
            width, _, _, first, last = self._widths[unit]
            if before is not None:
                pen += self._kerning[before, first]
            pens.append(pen)
            pen, before = pen + width, last
        return pens, pen

    def _blend(self, pixels, coverage, row, col):
        """Coverage ((h, w, 1), 0-255) over opaque pixels as matplotlib's Agg blends a glyph
        (its fixed_blender_rgba_plain, integer for integer); the part outside the canvas is
        left out."""
        height, width = coverage.shape[:2]
        top, left = max(row, 0), max(col, 0)
        bottom, right = min(row + height, pixels.shape[0]), min(col + width, pixels.shape[1])
        if top >= bottom or left >= right:
            return
        alpha = coverage[top - row:bottom - row, left - col:right - col]
        if self._alpha != 255:  # Agg's mult_cover: the text's alpha times the coverage, rounded
            alpha = alpha * self._alpha + 128
            alpha = (alpha + (alpha >> 8)) >> 8
        region = pixels[top:bottom, left:right, :3]
        under = region.astype(np.int32)
        region[...] = ((self._colour - 255 * under) * alpha + 65280 * under) // (65280 + alpha)

    def _measure(self, units):
        """Look up the extents of units not seen yet as matplotlib measures a text (a
        character's advance is its hinted advance, which its layout uses)."""
        new = [unit for unit in units if unit not in self._widths]
        if new:
            if "digits inside" not in self._cache:
                # All the digits at once: when none reaches beyond the font's own extent, which
                # a line's box has anyway, their own heights never matter (one measurement, not
                # one a digit).
                ascent, descent = self._line_extent()
                _, height, below = self._measure_text("".join(sorted(DIGITS)))
                self._cache["digits inside"] = height - below <= ascent and below <= descent
            for unit in new:
                inside = unit in DIGITS and self._cache["digits inside"]
                width, height, below = (0, 0, 0) if inside else self._measure_text(unit)
                self._font.set_size(self._prop.get_size_in_points(), self._dpi)  # matplotlib
                if unit in DIGITS:  # one character                              # sets it again
                    glyph = self._font.load_char(ord(unit), flags=get_hinting_flag())
                    width = glyph.horiAdvance / 64
                index = [self._font.get_char_index(ord(c)) for c in (unit[0], unit[-1])]
                self._widths[unit] = (width, height - below, below, *index)

    def _line_extent(self):
        """The font's own ascent and descent in pixels, which matplotlib's Text layout takes for
        a line's least (from the OS/2 table, else hhea)."""
        if "line" not in self._cache:
            scale = self._prop.get_size_in_points() * self._dpi / 72 / self._font.units_per_EM
            for table, ascent, descent in (("OS/2", "sTypoAscender", "sTypoDescender"),
                                           ("hhea", "ascent", "descent")):
                metrics = self._font.get_sfnt_table(table)
                if metrics is not None:
                    self._cache["line"] = (metrics[ascent] * scale, -metrics[descent] * scale)
                    break
            else:  # no table: the least is then "lp"'s
                _, height, descent = self._measure_text("lp")
                self._cache["line"] = (height - descent, descent)
        return self._cache["line"]

    def _measure_text(self, text):
        """(width, height, descent) of `text` in pixels, as matplotlib's Agg measures it."""
        if "renderer" not in self._cache:  # one a font and resolution, made when first needed
            self._cache["renderer"] = RendererAgg(1, 1, self._dpi)
        return self._cache["renderer"].get_text_width_height_descent(text, self._prop, False)

    def _kern(self, units):
        """Look up the kerning between neighbouring units not seen yet."""
        for pair in zip(units, units[1:]):
            indices = (self._widths[pair[0]][4], self._widths[pair[1]][3])
            if indices not in self._kerning:  # as matplotlib's layout kerns: unfitted
                self._font.set_size(self._prop.get_size_in_points(), self._dpi)
                kerning = self._font.get_kerning(*indices, ft2font.Kerning.UNFITTED)
                self._kerning[indices] = kerning / 64

    def _render(self, keys):
        """Render the (unit, x phase, y phase) keys not cached yet, all in one draw of a scratch
        figure, black on white, each pen at a whole pixel plus its phases (64ths of a pixel,
        where FreeType places a glyph), as matplotlib draws a text there; keep each one's
        coverage and offsets from the whole pixel."""
        if set(keys) <= self._renders.keys():
            return
        # Renderings come in sets, so that events to come find theirs: every digit with a digit
        # and, for a centred line, whose centre moves by half a pixel as a number's width
        # changes by one, each at its phase and half a pixel on.
        wanted = set()
        phases = (0, 32) if self._like.get_ha() == "center" else (0,)
        for unit, x_phase, y_phase in keys:
            for phase in ((x_phase + shift) % 64 for shift in phases):
                wanted.update((u, phase, y_phase) for u in (DIGITS if unit in DIGITS else [unit]))
        missing = sorted(wanted - self._renders.keys())
        # One text per phase of digits, spaced out (a text costs matplotlib ~1 ms, a glyph in it
        # ~0.1 ms); any other unit, or a digit that a kerned neighbour would move off its
        # phase, a text of its own.
        lines = {}
        for key in missing:
            lines.setdefault(key[1:] if key[0] in DIGITS else key, []).append(key)
        texts = []  # [(the keys, each one's pen in the text, the text's units, its advance)]
        for line in lines.values():
            units = [u for key in line for u in (key[0], " ", " ")][:-2]  # ink never meets
            pens, advance = self._layout(units)
            if len(line) > 1 and any(pen != int(pen) for pen in pens):  # kerned: one by one
                texts += [([key], [0.0], [key[0]], self._layout([key[0]])[1]) for key in line]
            else:
                texts.append((line, pens[::3], units, advance))
        margin = int(np.ceil(_CELL / 2 * self._prop.get_size_in_points() * self._dpi / 72))
        height = 2 * margin
        starts = np.cumsum([0] + [int(np.ceil(advance)) + 2 * margin for *_, advance in texts])
        # whatever the style: the ink is read from black on white
        fig = Figure((starts[-1] / self._dpi, height / self._dpi), self._dpi, facecolor="white")
        FigureCanvasAgg(fig)
        for (line, _, units, _), start in zip(texts, starts):
            x_phase, y_phase = line[0][1:]
            fig.text((start + margin + x_phase / 64) / starts[-1], (margin + y_phase / 64) / height,
                     "".join(units), fontproperties=self._prop, color="black", ha="left",
                     va="baseline")
        fig.canvas.draw()
        ink = 255 - np.asarray(fig.canvas.buffer_rgba())[..., 0]
        space = int(self._widths[" "][0])
        for (line, pens, _, _), start, stop in zip(texts, starts, starts[1:]):
            for key, pen in zip(line, pens):
                x = start + margin + int(pen)  # the pen's whole pixel
                # a unit's ink: up to a space beyond its advance (the middle of the gap)
                left = x - space if len(line) > 1 else start
                right = x + int(np.ceil(self._widths[key[0]][0])) + space if len(line) > 1 else stop
                box = ink[:, left:right]
                rows, cols = np.nonzero(box.any(axis=1))[0], np.nonzero(box.any(axis=0))[0]
                if not len(rows):  # a space
                    self._renders[key] = (np.zeros((0, 0, 1), np.int32), 0, 0)
                    continue
                # black on white: 255 - red is the coverage Agg blended, exactly (its blend of
                # black over white is one to one)
                coverage = box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1, None].astype(np.int32)
                self._renders[key] = (coverage, left + cols[0] - x, rows[0] - margin)


def _whole_and_phase(position):
    """(the whole pixel at or below a display position, the rest in 64ths of a pixel)."""
    sixty_fourths = round(position * 64)
    return sixty_fourths // 64, sixty_fourths % 64
