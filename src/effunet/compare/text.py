"""Formatting shared by the comparison's tables: cells, signed numbers, captions as Markdown and HTML."""

from __future__ import annotations

import html
import re

import pandas as pd


def cell(mean, std, decimals: int) -> str:
    """``mean ± std`` at fixed decimals; no ± where std is missing (one seed), "–" where mean is."""
    if pd.isna(mean):
        return "–"
    return f"{mean:.{decimals}f}" + ("" if pd.isna(std) else f" ± {std:.{decimals}f}")


def signed(value: float, decimals: int) -> str:
    """A number with its sign, zero as +0.00..."""
    return f"{value + 0.0:+.{decimals}f}".replace("-0." + "0" * decimals, "+0." + "0" * decimals)


def bullets(items) -> str:
    """A caption as a short Markdown bullet list."""
    return "\n".join(f"- {item}" for item in items)


def md(frame: pd.DataFrame) -> str:
    """A table as Markdown, cells as they are (no number parsing)."""
    return frame.to_markdown(index=False, disable_numparse=True)


def caption_html(caption: str) -> str:
    """A Markdown bullet-list caption as an HTML list (any other text as a paragraph)."""
    lines = caption.splitlines()
    if lines and all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{plain(line[2:])}</li>" for line in lines) + "</ul>"
    return f"<p>{plain(caption)}</p>"


def plain(markdown_text: str) -> str:
    """Markdown's **bold** and `code` of a caption as HTML, the rest escaped."""
    text = html.escape(markdown_text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
