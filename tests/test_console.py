"""Progress without a terminal (a `dvc repro` log, a cluster job's file): plain lines every 5 %, with the
stage's info, elapsed time and ETA; on a terminal, rich's bar."""

import io

from rich.console import Console
from rich.progress import Progress

from pipeline.console import PlainProgress, progress


def lines_of(steps, total=100, start=0):
    out = io.StringIO()
    with progress(Console(file=out, force_terminal=False, width=300)) as bar:
        assert isinstance(bar, PlainProgress)
        task = bar.add_task("train linear", total=total, info="")
        for step in range(start + 1, steps + 1):
            bar.update(task, completed=step, info=f"loss {1 / step:.3f}  410 img/s")
        bar.update(task, completed=steps)  # the stages report the last step twice (log and step callbacks)
    return out.getvalue().splitlines()


def test_a_line_every_five_percent_with_info_and_eta():
    lines = lines_of(100)
    assert [line.split()[2] for line in lines] == [f"{s}/100" for s in [1, *range(5, 101, 5)]]
    assert all("img/s" in line and "elapsed" in line for line in lines)
    assert all("ETA" in line for line in lines[1:])
    assert lines[-1].startswith("train linear: 100/100 (100%)")


def test_a_resumed_run_starts_its_lines_where_it_resumed():
    lines = lines_of(2000, total=2000, start=1500)
    assert lines[0].split()[2] == "1501/2000" and len(lines) == 1 + 5  # 80 % (1501) ... 100 %


def test_advance_counts_like_sampling_steps():
    out = io.StringIO()
    with progress(Console(file=out, force_terminal=False)) as bar:
        task = bar.add_task("sample linear", total=7, info="ddpm, 100 steps")
        for _ in range(7):
            bar.advance(task)
    assert out.getvalue().splitlines()[-1].startswith("sample linear: 7/7 (100%)  ddpm, 100 steps")


def test_a_terminal_gets_the_rich_bar():
    assert isinstance(progress(Console(file=io.StringIO(), force_terminal=True)), Progress)
