"""What the browser tests do with a page, as a person would (set a slider, click, wait for a result, download the
export) and what they check of it (a figure shown whole, a column visible without scrolling sideways, no error
shown). Used by tests/test_browser.py; screenshots and downloads go to test-artifacts/."""
from __future__ import annotations

import contextlib
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
EXPORT_LINKS = ("xpath=//label[@data-testid='block-label'][starts-with(normalize-space(.), 'Export')]"
                "/ancestor::div[contains(concat(' ', @class, ' '), ' block ')][1]//a[@data-testid='download-link']")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = "Steps (DDPM / DDIM / PC / DPM)"  # the Denoising tab's steps slider


@contextlib.contextmanager
def on_tab(page, name: str, artifact: str):
    """Select the tab ``name``; afterwards (passed or failed) save a full-page screenshot as ``artifact``.png."""
    try:
        page.get_by_role("tab", name=name, exact=True).click()
        yield
    finally:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{artifact}.png"), full_page=True)


@contextlib.contextmanager
def sampler_for_the_test(page, sampler: str, steps: int):
    """Select ``sampler`` and ``steps`` on the Denoising tab; afterwards (passed or failed) put back what was set."""
    was = next(name for name in ("ddim", "ddpm") if visible(page.get_by_label(name, exact=True)).is_checked())
    was_steps = visible(page.locator(f'input[aria-label="number input for {STEPS}"]')).input_value()
    visible(page.get_by_label(sampler, exact=True)).check()
    set_value(page, STEPS, steps)
    try:
        yield
    finally:
        visible(page.get_by_label(was, exact=True)).check()
        set_value(page, STEPS, was_steps)


def visible(locator):
    return locator.filter(visible=True).first


def set_value(page, label: str, value) -> None:
    """Type ``value`` into the number box of the slider or number field labelled ``label`` (or a textbox)."""
    box = page.locator(f'input[aria-label="number input for {label}"]').filter(visible=True)
    if not box.count():
        box = page.get_by_label(label, exact=True).filter(visible=True)
    if not box.count():  # a textbox with an info line under its label
        box = block_of(page, label).locator("textarea, input").filter(visible=True)
    box = box.first
    box.wait_for()
    for _ in range(3):
        box.fill(str(value))
        box.press("Tab")  # commit (blur), as a person leaving the field
        page.wait_for_timeout(150)
        if _same(box.input_value(), value):
            return
    pytest.fail(f"could not set {label!r} to {value!r} (it shows {box.input_value()!r})")


def _same(shown: str, value) -> bool:
    try:
        return float(shown) == float(value)
    except ValueError:
        return shown == str(value)


def click_button(page, name: str) -> None:
    visible(page.get_by_role("button", name=name, exact=True)).click()


def set_checks(page, choices: dict[str, str], wanted: set[str]) -> None:
    """Tick exactly ``wanted`` among a checkbox group's ``choices`` (key → shown label)."""
    for key, label in choices.items():
        box = visible(page.get_by_role("checkbox", name=label, exact=True))
        box.set_checked(key in wanted)


def wait_for_result(page, text: str, timeout_s: float) -> None:
    """Wait until ``text`` shows; fail at once with the message of an error toast."""
    deadline = time.monotonic() + timeout_s
    target = page.get_by_text(text).filter(visible=True)
    errors = page.locator(".toast-body.error, [data-testid='toast-body'].error")
    while time.monotonic() < deadline:
        if target.count():
            return
        if errors.count():
            pytest.fail(f"the app reported an error: {errors.first.inner_text()}")
        page.wait_for_timeout(500)
    pytest.fail(f"no result ({text!r}) within {timeout_s:.0f} s; what the app's threads were doing: "
                f"{dump_threads(text)}")


def dump_threads(what: str) -> Path:
    """Every thread's Python stack (the app runs in this process) into test-artifacts/, for a result that never came."""
    import faulthandler

    path = ARTIFACTS / f"threads-{re.sub(r'[^a-z0-9]+', '-', what.lower()).strip('-')[:40]}.txt"
    with path.open("w") as f:
        faulthandler.dump_traceback(file=f, all_threads=True)
    return path


def wait_for_image(page, label: str) -> None:
    """An image component labelled ``label`` shows a picture."""
    block = page.locator("div.block", has=page.locator("label[data-testid='block-label']", has_text=label))
    visible(block.locator("img")).wait_for(timeout=20_000)


def download_export(page, tab: str, fallback_label: str | None = None, timeout_s: float = 60) -> Path:
    """Download a file of the tab's "Export: …" list (the zip of the run if offered, else the first file; or, where a
    tab has no Export list, the list labelled ``fallback_label``) and check it: not empty, a valid zip or PNG."""
    links = page.locator(EXPORT_LINKS).filter(visible=True)
    if fallback_label is not None:
        block = page.locator("div.block", has=page.locator("label[data-testid='block-label']",
                                                           has_text=fallback_label))
        links = links.or_(block.locator("a[data-testid='download-link']").filter(visible=True))
    deadline = time.monotonic() + timeout_s
    while not links.count() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert links.count(), "no export file was offered after the run"
    names = [links.nth(i).get_attribute("download") or "" for i in range(links.count())]
    pick = next((i for i, n in enumerate(names) if n.endswith(".zip")), 0)
    with page.expect_download(timeout=30_000) as info:
        links.nth(pick).click()
    download = info.value
    path = Path(download.path())
    data = path.read_bytes()
    assert data, f"{download.suggested_filename} is empty"
    name = download.suggested_filename.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            assert zf.namelist() and zf.testzip() is None, f"{name} is not a valid zip"
    elif name.endswith(".png"):
        assert data.startswith(PNG_MAGIC), f"{name} is not a PNG"
    saved = ARTIFACTS / "downloads" / f"{tab}-{download.suggested_filename}"
    saved.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, saved)
    return saved


# what "whole" means for a picture: loaded, not cropped by object-fit, and not cut by any box that clips its content
WHOLE_JS = """(img) => {
  const out = [], r = img.getBoundingClientRect();
  if (!img.complete || !img.naturalWidth) return ['not loaded'];
  const fit = getComputedStyle(img).objectFit;
  const mismatch = Math.abs((r.width / r.height) / (img.naturalWidth / img.naturalHeight) - 1) > 0.03;
  if (mismatch && !['contain', 'scale-down'].includes(fit))
    out.push(`a ${img.naturalWidth}x${img.naturalHeight} picture drawn ${Math.round(r.width)}x${Math.round(r.height)}`
             + ` with object-fit ${fit}: cropped or stretched`);
  for (let e = img.parentElement; e && e !== document.body; e = e.parentElement) {
    const s = getComputedStyle(e);
    if ([s.overflowX, s.overflowY].every(v => v === 'visible')) continue;
    const b = e.getBoundingClientRect();
    if (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1)
      out.push(`cut by <${e.tagName.toLowerCase()} class="${e.className}">`);
  }
  return out;
}"""
# a table cell one can see without scrolling sideways: inside every box between it and the page that scrolls
UNSCROLLED_JS = """(cell) => {
  const r = cell.getBoundingClientRect();
  for (let e = cell.parentElement; e && e !== document.body; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.overflowX === 'visible') continue;
    const b = e.getBoundingClientRect();
    if (r.right > b.right + 1 || r.left < b.left - 1)
      return `only after scrolling <${e.tagName.toLowerCase()}> sideways`;
  }
  return '';
}"""


LABELS = "label[data-testid='block-label'], [data-testid='block-info'], .header-row .label"  # image/slider/table


def block_of(page, label: str):
    """The visible component whose label starts with ``label`` (the innermost block that holds it)."""
    named = page.locator(LABELS).filter(has_text=re.compile(rf"^\s*{re.escape(label)}"))
    return page.locator("div.block", has=named).filter(visible=True).last


def assert_whole(page, label: str, artifact: str) -> None:
    """The first picture of the image or gallery labelled ``label`` is shown whole (screenshot: ``artifact``)."""
    block = block_of(page, label)
    image = visible(block.locator("img"))
    image.wait_for(timeout=30_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    block.scroll_into_view_if_needed()
    with contextlib.suppress(Exception):
        block.screenshot(path=str(ARTIFACTS / f"{artifact}.png"))
    problems = image.evaluate(WHOLE_JS)
    assert not problems, f"{label}: the first picture is not shown whole: {problems}"


def assert_column_visible(page, table_label: str, column: str, artifact: str) -> None:
    """The header ``column`` of the table labelled ``table_label`` is visible without sideways scrolling."""
    block = block_of(page, table_label)
    header = visible(block.locator(f'th[title="{column}"]'))
    header.wait_for(timeout=20_000)
    block.scroll_into_view_if_needed()
    with contextlib.suppress(Exception):
        block.screenshot(path=str(ARTIFACTS / f"{artifact}.png"))
    problem = header.evaluate(UNSCROLLED_JS)
    assert not problem, f"{table_label}: the column {column!r} is visible {problem}"


def assert_no_error_shown(page) -> None:
    """No error toast and no "Error" badge or word anywhere on the page."""
    assert not page.locator(".toast-body.error, [data-testid='toast-body'].error").count(), "an error toast"
    shown = page.get_by_text(re.compile(r"\bError\b")).filter(visible=True)
    assert not shown.count(), f"the page shows: {shown.first.inner_text()[:200]!r}"


def assert_hint_instead_of_placeholders(page, table_label: str, hint: str) -> None:
    """Before the first run the table shows a one-line hint, not the placeholder headers "1 2 3"."""
    block = block_of(page, table_label)
    headers = [h.get_attribute("title") for h in block.locator("th").all()]
    assert not {"1", "2", "3"} <= set(headers), f"{table_label} shows placeholder headers {headers}"
    assert visible(block.get_by_text(hint)).is_visible()


def open_accordion(page, title: str) -> None:
    visible(page.get_by_text(title, exact=True)).click()
    page.wait_for_timeout(500)
