"""The HTML report in a real browser: headless Chromium opens it from disk (file://).

The report is built from ``report_case`` (tests/e2e/conftest.py): a small but
realistic churn case with a decision and its reasons, the data summary, the
registry, and model scores that the ``score_plots`` section turns into Plotly
figures (ROC curves, cost vs threshold with the capacity limit, a confusion
matrix) and a table.
"""

from __future__ import annotations

from mlcase.report.render import build_report

from .conftest import score_plots


def test_report_renders_in_chromium(report_case, open_report, artifacts):
    path = build_report(report_case, builders=[score_plots])
    view = open_report(path)
    view.assert_healthy()
    page = view.page

    figs = view.figures()
    assert len(figs) == 3
    # the ROC figure drew one line per model plus the diagonal
    assert page.locator("#scores .plotly-fig").first.locator("g.trace.scatter").count() == 4

    banner = page.locator("#decision")
    assert banner.is_visible()
    assert "GO" in banner.locator(".verdict").inner_text()
    assert "$3.12 per decision" in banner.inner_text()
    top = banner.bounding_box()
    assert top["y"] < 120, "the decision is at the top of the page"
    assert banner.locator(".banner").evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(31, 122, 68)"

    # every contents entry leads to a section on the page
    hrefs = page.eval_on_selector_all("#toc a", "as => as.map(a => a.getAttribute('href'))")
    assert {"#decision", "#case", "#scores"} <= set(hrefs)
    for href in hrefs:
        assert page.locator(href).count() == 1, href

    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    assert (artifacts / "report.png").stat().st_size > 20_000


def test_report_is_readable_without_javascript(report_case, open_report, artifacts):
    path = build_report(report_case, builders=[score_plots])
    view = open_report(path, javascript=False)
    page = view.page
    assert page.locator("#decision .verdict").inner_text() == "GO"
    assert page.locator("#decision").is_visible()
    cells = page.locator("#scores table.tbl tbody tr")
    assert cells.count() == 3
    assert cells.first.is_visible()
    assert page.locator("#scores table.tbl td.num").first.evaluate("e => getComputedStyle(e).textAlign") == "right"
    # the owners table of the case and the assumptions are plain HTML
    assert "retention team lead" in page.locator("#case").inner_text()
    # without JS the plots say what they are instead of leaving a blank hole
    hint = page.locator("#scores .plotly-fig").first.evaluate(
        "e => getComputedStyle(e, '::before').content")
    assert "needs JavaScript" in hint
    assert view.page_errors == [] and view.external_requests == []
    page.screenshot(path=str(artifacts / "report-nojs.png"), full_page=True)
