"""Headless Chromium (Debian's chromium, driven by Playwright) opens the whole app as a person would.

Screenshots go to test-artifacts/ (ignored by git). Skipped, with the reason, where no Chromium is installed.
"""
import shutil

import pytest

from conftest import ROOT, free_port

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium)")]


@pytest.fixture(scope="module")
def app_url():
    from app import build_app

    demo = build_app()
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url, wait_until="networkidle")
        yield page
        browser.close()


def test_app_opens_on_the_denoising_tab(page):
    page.get_by_role("tab", name="Denoising steps").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Generate").is_visible()
    assert "Diffusion Domain Lab" in page.title()
    page.screenshot(path=str(ARTIFACTS / "denoise-tab.png"), full_page=True)


@pytest.mark.skipif(not (ROOT / "checkpoints" / "ddpm-mnist" / "model_index.json").exists(),
                    reason="checkpoints/ddpm-mnist is not shipped")
def test_generate_shows_the_grid(page):
    page.get_by_role("tab", name="Denoising steps").click()
    page.get_by_role("button", name="Generate").click()
    # the trajectory grid appears as an <img> inside the "Denoising trajectory" component
    page.locator("img[src*='grid'], img[src*='image']").first.wait_for(timeout=60_000)
    page.get_by_text("snapshots in").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "denoise-grid.png"), full_page=True)
    assert page.get_by_text("Saved in").is_visible()
