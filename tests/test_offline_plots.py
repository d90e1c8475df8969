"""`dvc plots show` writes a page that draws its charts without internet: the template dvc_plots/offline.html
(set as `plots.html_template` in .dvc/config) loads vega, vega-lite and vega-embed from dvc_plots/vendor/
instead of DVC's default CDN. Checked in a real headless Chromium with the network cut off."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from browser import dump_dom
from conftest import ROOT

TSV = "step\tloss\n0\t1.0\n10\t0.5\n20\t0.3\n30\t0.25\n40\t0.2\n"
DVC_YAML = "plots:\n  - loss.tsv:\n      x: step\n      y: loss\n"
# What Vega draws into: <canvas class="marks"> (its default renderer) or <svg class="marks">.
MARKS = re.compile(r'<(?:canvas|svg)\b[^>]*class="marks"')


def run(args, cwd, env):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def charts(page) -> dict[str, bool]:
    """For each plot div of a page `dvc plots show` wrote: whether Vega drew into it (DOM after scripts ran)."""
    ids = re.findall(r'<div id\s*=\s*"([^"]+)"', page.read_text())
    dom = dump_dom(page)
    starts = [dom.find(f'id="{i}"') for i in ids]
    ends = starts[1:] + [len(dom)]
    return {i: s >= 0 and bool(MARKS.search(dom, s, e)) for i, s, e in zip(ids, starts, ends)}


@pytest.mark.slow
def test_plots_page_renders_offline(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["DVC_NO_ANALYTICS"] = "1"
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], repo, env)
    run([*dvc, "init", "-q"], repo, env)
    # The project's own DVC config (its plots.html_template) and template; a one-plot dvc.yaml.
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / "dvc_plots").mkdir()
    shutil.copy(ROOT / "dvc_plots" / "offline.html", repo / "dvc_plots")
    shutil.copytree(ROOT / "dvc_plots" / "vendor", repo / "dvc_plots" / "vendor")
    (repo / "loss.tsv").write_text(TSV)
    (repo / "dvc.yaml").write_text(DVC_YAML)

    # Plain `dvc plots show`, as a user runs it: the template comes from .dvc/config.
    run([*dvc, "plots", "show"], repo, env)
    page = repo / "dvc_plots" / "index.html"
    srcs = re.findall(r'<script\b[^>]*\bsrc\s*=\s*["\']([^"\']+)', page.read_text())
    assert srcs == ["vendor/vega.min.js", "vendor/vega-lite.min.js", "vendor/vega-embed.min.js"]
    assert all((page.parent / s).is_file() for s in srcs)
    drawn = charts(page)
    assert drawn and all(drawn.values()), drawn

    # The control: DVC's default page (scripts from a CDN) stays blank in the same offline browser,
    # so the check above can fail.
    from dvc_render.html import PAGE_HTML

    (tmp_path / "default.html").write_text(PAGE_HTML)
    run([*dvc, "plots", "show", "--html-template", str(tmp_path / "default.html"), "-o", str(tmp_path / "cdn")],
        repo, env)
    cdn_page = tmp_path / "cdn" / "index.html"
    assert "https://cdn.jsdelivr.net/" in cdn_page.read_text()
    drawn = charts(cdn_page)
    assert drawn and not any(drawn.values()), drawn
