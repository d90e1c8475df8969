"""``ddpm-study readme``: not a stage. Writes README.md's answer — the main study's ranking with its
verdicts — between its ``<!-- answer:begin -->`` and ``<!-- answer:end -->`` lines, from the committed
``metrics/evaluate.json`` and ``params.yaml`` through the write-up's own sentences (``writeup.findings``),
so no result is typed by hand (tests/test_docs.py checks the block is current). Run it after committing
a new study.
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study.config import StudyConfig
from ddpm_study.errors import StudyError

from .. import outputs
from ..console import console
from ..writeup import findings

README = Path("README.md")
BEGIN, END = "<!-- answer:begin -->", "<!-- answer:end -->"


def answer(cfg: StudyConfig) -> str:
    return "\n".join(findings.answer(cfg, outputs.read_evaluate_metrics()))


def with_answer(text: str, block: str) -> str:
    """``text`` with the lines between the answer markers replaced by ``block``."""
    return with_block(text, block, BEGIN, END, README)


def with_block(text: str, block: str, begin: str, end: str, where: Path) -> str:
    """``text`` (the file ``where``) with the lines between the ``begin`` and ``end`` markers replaced by ``block``."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise StudyError(f"{where}: needs one {begin} line followed by one {end} line")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def run(cfg: StudyConfig, params: Path) -> None:
    README.write_text(with_answer(README.read_text(), answer(cfg)))
    console.print(f"{README}: the answer block rewritten from {outputs.EVALUATE_METRICS}")
