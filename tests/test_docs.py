"""The documentation stays true to the repository: links resolve, the README stays one page and
reaches every reference page, and every list of schedules, samplers or stages is the code's.

A list is checked where the docs mark it: an HTML comment ``<!-- list:KIND -->`` followed, on the
same line, by the names in backticks (KIND: schedules, samplers, stages, extended-stages), with
some text before the marker: a line that starts with ``<!--`` would open an HTML block, which
shows the names as raw text and breaks the paragraph. No
network, no training: it reads files, parses both dvc.yaml files and imports two library modules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12_000


def documents() -> list[Path]:
    """The hand-written pages: the README, the reference pages, the tests' page."""
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "README.md"]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target); the target up to whitespace or ')', an optional "title" after it.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
MARKER = re.compile(r"<!--\s*list:([A-Za-z_-]+)\s*-->(.*)$")


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Every link and image target in the file's prose (code spans and blocks are not links)."""
    found = []
    for line in prose_lines(path):
        found += LINK.findall(INLINE_CODE.sub("", line))
    return found


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def resolve(source: Path, target: str) -> tuple[Path, str]:
    """The repository path a relative link points to, and its anchor ('' if none)."""
    target, _, anchor = target.partition("#")
    path = source if target == "" else (source.parent / target).resolve()
    return path, anchor


@pytest.mark.parametrize("doc", documents(), ids=_rel)
def test_every_relative_link_and_image_resolves(doc: Path) -> None:
    assert doc.is_file(), f"{_rel(doc)} is missing"
    broken = []
    for target in links(doc):
        if is_external(target):
            continue
        path, anchor = resolve(doc, target)
        if ROOT not in (path, *path.parents):
            broken.append(f"{target} (outside the repository)")
        elif not path.exists():
            broken.append(f"{target} (no such file or folder: {_rel(path)})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading '#{anchor}' in {_rel(path)})")
    assert not broken, f"{_rel(doc)}: broken links:\n  " + "\n  ".join(broken)


def test_readme_is_one_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, over {README_MAX_BYTES}: move reference material to docs/"


def test_readme_links_every_reference_page() -> None:
    linked = {resolve(README, target)[0] for target in links(README) if not is_external(target)}
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "README.md"]
    missing = [_rel(page) for page in pages if page.resolve() not in linked]
    assert not missing, f"README.md does not link: {', '.join(missing)}"


def _samplers() -> list[str]:
    """The sampler registry: ``ddpm_study.samplers.SAMPLERS`` where it exists, else ``diffusion.SAMPLERS``."""
    try:
        from ddpm_study.samplers import SAMPLERS
    except ImportError:
        from ddpm_study.diffusion import SAMPLERS
    return list(SAMPLERS)


def _schedules() -> list[str]:
    from ddpm_study.schedules import SCHEDULES

    return list(SCHEDULES)


def _stages(file: str) -> list[str]:
    return list(yaml.safe_load((ROOT / file).read_text())["stages"])


KINDS = {
    "schedules": _schedules,
    "samplers": _samplers,
    "stages": lambda: _stages("dvc.yaml"),
    "extended-stages": lambda: _stages("extended/dvc.yaml"),
}


def marked_lists() -> list[tuple[str, int, str, list[str]]]:
    """(file, line number, kind, names) of every marked list in the documents."""
    found = []
    for doc in documents():
        lines, fenced = doc.read_text(encoding="utf-8").splitlines(), False
        for number, line in enumerate(lines, 1):
            if FENCE.match(line):
                fenced = not fenced
            match = None if fenced else MARKER.search(line)
            if match:
                found.append((_rel(doc), number, match.group(1), re.findall(r"`([^`]+)`", match.group(2))))
    return found


def test_every_kind_of_list_is_marked_somewhere() -> None:
    kinds = {kind for _, _, kind, _ in marked_lists()}
    assert kinds >= set(KINDS), f"no marked list of: {', '.join(sorted(set(KINDS) - kinds))}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_marked_lists_name_what_the_code_has(kind: str) -> None:
    expected = KINDS[kind]()
    wrong = [
        f"{file}:{number}: {names} (the code: {expected})"
        for file, number, found_kind, names in marked_lists()
        if found_kind == kind and names != expected
    ]
    assert not wrong, f"marked lists of {kind} that differ from the code, in names or order:\n  " + "\n  ".join(wrong)


def test_no_marked_list_of_an_unknown_kind() -> None:
    unknown = [f"{file}:{number}: list:{kind}" for file, number, kind, _ in marked_lists() if kind not in KINDS]
    assert not unknown, f"unknown list kinds (known: {', '.join(KINDS)}):\n  " + "\n  ".join(unknown)


def test_no_marker_starts_a_line() -> None:
    """A line opening with ``<!--`` is an HTML block in CommonMark: the names after it would render raw."""
    starting = [
        f"{_rel(doc)}:{number}"
        for doc in documents()
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if MARKER.search(line) and line.lstrip().startswith("<!--")
    ]
    assert not starting, "put some text before these list markers: " + ", ".join(starting)


def test_the_readme_answer_is_generated_from_the_committed_metrics(monkeypatch) -> None:
    """README.md's answer block is what `ddpm-study readme` writes from metrics/evaluate.json and params.yaml:
    no result there is typed by hand, and a new committed study without a rerun of the tool fails here."""
    from pipeline.params import load
    from pipeline.tools import readme

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    assert readme.with_answer(text, readme.answer(load(ROOT / "params.yaml"))) == text
    block = text.split(readme.BEGIN)[1].split(readme.END)[0]
    assert "**At the study's main setting**" in block


def test_the_answer_block_needs_its_markers() -> None:
    from ddpm_study.errors import StudyError
    from pipeline.tools import readme

    assert readme.with_answer(f"a\n{readme.BEGIN}\nold\n{readme.END}\nb", "new") == f"a\n{readme.BEGIN}\nnew\n{readme.END}\nb"
    with pytest.raises(StudyError, match="answer:begin"):
        readme.with_answer("no markers", "new")


def test_the_gpu_budget_table_is_the_scripts_output() -> None:
    """docs/operations.md's GPU configurations table is what benchmarks/gpu_budget.py counts: no FLOP count by hand."""
    from benchmarks import gpu_budget

    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("<!-- gpu-budget:begin -->\n")[1].split("\n<!-- gpu-budget:end -->")[0]
    rows = [gpu_budget.budget(name, o, gpu_budget.ASSUMED_FRACTION) for name, o in gpu_budget.CONFIGS.items()]
    assert table == gpu_budget.markdown(rows)
    for name, overrides in gpu_budget.CONFIGS.items():  # the commands shown are the configurations counted
        import yaml

        command = text.split(f"dvc exp run -n {name} ")[1].split("\n```")[0].split("\n# ")[0]
        shown = dict(arg.strip("'").split("=", 1) for arg in command.replace("\\\n", " ").split() if "=" in arg)
        assert {k: yaml.safe_load(v) for k, v in shown.items()} == overrides, name


def likelihood_terms_sentence(result: dict, exact: int) -> str:
    """What docs/method.md quotes from benchmarks/likelihood_terms.json (rerun: python benchmarks/likelihood_terms.py)."""
    s = result["schedules"].values()

    def span(values, form):
        return f"{format(min(values), form)}–{format(max(values), form)}"

    return (f"the terms at t < {exact} hold {span([100 * x['share_below'][str(exact)] for x in s], '.0f')} % of the "
            f"bound, and summing them exactly cuts the estimate's spread over t per image from "
            f"{span([x['estimate_std']['0'] for x in s], '.1f')} to {span([x['estimate_std'][str(exact)] for x in s], '.2f')} "
            f"bits/dim ({result['images']} test images per model, {result['strata']} strata)")


def test_the_method_page_quotes_the_likelihood_terms():
    import yaml

    result = json.loads((ROOT / "benchmarks" / "likelihood_terms.json").read_text())
    exact = yaml.safe_load((ROOT / "params.yaml").read_text())["likelihood"]["exact_terms"]
    text = " ".join((ROOT / "docs" / "method.md").read_text().split())
    assert likelihood_terms_sentence(result, exact) in text


VERDICT_RATES = sorted((ROOT / "benchmarks").glob("verdict_rates_n*.json"))


@pytest.mark.parametrize("path", VERDICT_RATES, ids=lambda p: p.stem)
def test_the_method_page_quotes_the_verdict_rates(path):
    from pipeline.writeup.text import verdict_rates_sentence

    result = json.loads(path.read_text())
    text = " ".join((ROOT / "docs" / "method.md").read_text().split())
    from benchmarks.verdict_rates import model_schedule, results_path

    shift = result.get("shift", "generated")
    schedule = model_schedule(result) if shift == "model" else "cosine"
    assert path.name == results_path(result["n"], shift, schedule).name
    assert verdict_rates_sentence(result) in text


def test_the_method_page_quotes_the_null_at_the_schedules_distance():
    from benchmarks.verdict_rates import noise_null_quote, results_path

    n = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["num_images"]
    result = json.loads(results_path(n, "noise").read_text())
    pairs = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["pairs"]
    text = " ".join((ROOT / "docs" / "method.md").read_text().split())
    assert noise_null_quote(result, pairs) in text


def test_the_method_page_quotes_the_null_of_one_model():
    from benchmarks.verdict_rates import model_null_quote

    paths = sorted((ROOT / "benchmarks").glob("verdict_rates_n*_model_*.json"))
    assert paths, "benchmarks/verdict_rates.py --shift model has not been run"
    pairs = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["pairs"]
    text = " ".join((ROOT / "docs" / "method.md").read_text().split())
    for path in paths:
        assert model_null_quote(json.loads(path.read_text()), pairs) in text


def test_the_verdict_rates_are_measured_at_the_earlier_n_at_least():
    assert "verdict_rates_n500.json" in {p.name for p in VERDICT_RATES}


def test_the_main_write_up_states_the_verdict_rates_at_its_n_or_that_they_are_not_measured():
    """The committed study's write-up quotes the rule's measured rates at its own N (benchmarks/verdict_rates_n<N>.json,
    a dep of the report stage), or says they are not measured at that N and how to measure them."""
    from pipeline.stages.report import verdict_benchmark
    from pipeline.writeup.text import _verdict_rates

    n = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["num_images"]
    path = ROOT / verdict_benchmark(n)
    expected = _verdict_rates(json.loads(path.read_text()) if path.exists() else None, n)
    text = " ".join((ROOT / "reports" / "main" / "README.md").read_text().split())
    assert expected in text


PREDICTION = ROOT / "reports" / "prediction"
PREDICTION_BLOCKS = {"compare": ("eps-bf16", "v"), "fp32": ("eps-fp32", "v"), "precision": ("eps-bf16", "eps-fp32")}


@pytest.mark.parametrize("name", PREDICTION_BLOCKS)
def test_the_prediction_page_is_generated_from_its_runs(monkeypatch, name) -> None:
    """reports/prediction/README.md's tables and verdicts are what `python -m pipeline.tools.compare` writes from the
    committed runs' params and metric files: none is typed by hand, and a changed run without a rerun fails here."""
    from pipeline.tools import compare, readme

    monkeypatch.chdir(ROOT)
    page = PREDICTION / "README.md"
    text = page.read_text(encoding="utf-8")
    a, b = (compare.read_run(PREDICTION / run) for run in PREDICTION_BLOCKS[name])
    assert readme.with_block(text, compare.block(a, b), *compare.markers(name), page) == text
    assert f"in {b.name} the gap narrows in" in text.split(compare.markers(name)[0])[1]


def test_the_prediction_page_adds_the_two_runs_stds_in_quadrature() -> None:
    """Between runs (different models, no shared samples) a difference is unpaired: B − A ± hypot(std_A, std_B)."""
    import json
    import math

    a, b = (json.loads((PREDICTION / run / "metrics/evaluate.json").read_text())["cosine"] for run in ("eps-fp32", "v"))
    d, std = b["fid"] - a["fid"], math.hypot(a["fid_std"], b["fid_std"])
    block = (PREDICTION / "README.md").read_text(encoding="utf-8").split("<!-- fp32:begin -->")[1]
    assert f"cosine {a['fid']:.1f} ± {a['fid_std']:.1f} → {b['fid']:.1f} ± {b['fid_std']:.1f} ({d:+.1f} ± {std:.1f}, " in block


def test_the_prediction_pages_answer_quotes_the_long_run(monkeypatch):
    """The answer's numbers are what the extended study's undertraining.json gives (``writeup.extended``'s own
    sentences and fits), so a rerun of the long run without updating the page fails here."""
    from ddpm_study.replication import plateau
    from pipeline import outputs
    from pipeline.writeup.extended import LABELS, crossing, gap_summary

    monkeypatch.chdir(ROOT)
    u = outputs.read_undertraining_metrics()
    text = " ".join((PREDICTION / "README.md").read_text().split())
    assert f"at the main model's step: {gap_summary(u, u.main_steps)}; at the last snapshot: {gap_summary(u, u.snapshots[-1])}" in text
    fits = ", ".join(f"{crossing(u, x, n)['step']:,.0f} ({LABELS[x]}, {n} NFE)" for x in u.minus_ddpm for n in sorted(u.minus_ddpm[x]))
    assert f"puts the crossing at about {fits} training steps" in text
    stops = ", ".join(sorted({f"{plateau(g):,}" for g in u.ddpm_gain.values()}))
    assert f"DDPM's own FID stops improving beyond noise after step {stops} " in text


CONDITIONAL = ROOT / "reports" / "conditional"


def test_the_conditional_page_quotes_its_write_up_and_its_guidance_findings(monkeypatch) -> None:
    """reports/conditional/README.md's findings are lines of the run's generated write-up, and its guidance lines
    (the ranking at each weight, precision/recall against the weight) are what ``findings`` writes from the run's
    committed params and sweep metrics: a rerun without updating the page, or a hand-typed number, fails here."""
    from pipeline.tools import compare
    from pipeline.writeup import findings

    monkeypatch.chdir(ROOT)
    page = (CONDITIONAL / "README.md").read_text(encoding="utf-8")
    found = page.split("## What it found")[1].split("\n## ")[0]
    quoted = [line for line in found.splitlines() if line.startswith("- ")]
    write_up = set((CONDITIONAL / "report" / "README.md").read_text(encoding="utf-8").splitlines())
    assert len(quoted) >= 8 and not [line for line in quoted if line not in write_up]

    run = compare.read_run(CONDITIONAL)
    sampler, nfe, weights, names = run.cfg.sweep.samplers[0], max(run.cfg.sweep.nfe), sorted(run.cfg.sweep.guidance), list(run.cfg.schedule)
    expected = [*findings.guidance_rankings(run.sweep, sampler, nfe, weights, names),
                findings.guidance_precision_recall(run.sweep, sampler, nfe, weights, names)]
    assert expected[-1].startswith("**Precision / recall against guidance**")
    assert [f"- {line}" for line in expected] == quoted[-len(expected):]
