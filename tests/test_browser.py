"""The console in a real browser: headless Chromium (Debian's chromium + chromium-driver) through Selenium.

Marked ``browser`` (``pytest -m browser`` runs only these).  Without Chromium the tests are
skipped with the reason and how to install it; in CI (``CI`` set) they fail instead, so a
missing browser never passes silently.  Each test saves screenshots in its temp directory.
The operator is ziran's: gongan's automatic verifier answers its requests before a person could.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aggregates.clock import SimulatedClock
from aggregates.store import SHANGHAI
from tests.conftest import RESIDENT
from tests.test_console import PASSWORD, serving
from tests.test_exchange import request
from xiezhu.node import Node
from xiezhu.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
async def console(node: Node, settings: Settings, clock: SimulatedClock) -> AsyncIterator[str]:
    async with serving(settings, clock) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        why = ("headless Chromium is needed for the browser tests: apt-get install chromium chromium-driver "
               "(.ci/run installs them as root)")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=zh-CN"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ok = await asyncio.to_thread(check)
        if ok:
            return
        if loop.time() > deadline:
            raise AssertionError("the page did not show it in time")
        await asyncio.sleep(0.2)


async def log_in(driver: Any, base: str, login: str) -> None:
    from selenium.webdriver.common.by import By

    def do() -> None:
        driver.get(base + "/login")
        driver.find_element(By.NAME, "login").send_keys(login)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form.login button").click()

    await asyncio.to_thread(do)
    await until(lambda: "期限看板" in driver.title)


def row_state(driver: Any, number: str) -> str | None:
    """The board row's state, read in one script (the page swaps its rows in while we look)."""
    state = driver.execute_script(
        "var r = document.querySelector('tr[data-number=\"' + arguments[0] + '\"]'); return r ? r.dataset.state : null",
        number)
    return str(state) if state is not None else None


def not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__still_this_page === true"))


async def test_an_operator_answers_in_the_form_and_the_board_changes_without_reload(
        console: str, node: Node, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    request(node, assistor="ziran")
    await node.settle()
    await log_in(browser, console, "wang")
    assert row_state(browser, "20260001") == "on-time"
    await until(lambda: "on" in (browser.find_element(By.ID, "live").get_attribute("class") or ""))
    browser.execute_script("window.__still_this_page = true")
    board = browser.current_window_handle
    browser.save_screenshot(str(tmp_path / "board-before.png"))

    def answer() -> None:
        browser.switch_to.new_window("tab")
        browser.get(console + "/inbox/ziran")
        assert RESIDENT["id_number"] not in browser.page_source and "张*" in browser.page_source
        form = browser.find_element(By.CSS_SELECTOR, "#case-20260001 form.answer")
        Select(form.find_element(By.NAME, "verdict-1")).select_by_value("true")
        Select(form.find_element(By.NAME, "verdict-2")).select_by_value("unverifiable")
        form.find_element(By.NAME, "reason-2").send_keys("档案已移交")
        browser.save_screenshot(str(tmp_path / "inbox-form.png"))
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    await asyncio.to_thread(answer)
    await until(lambda: "已办理" in browser.page_source)
    browser.save_screenshot(str(tmp_path / "inbox-done.png"))
    browser.switch_to.window(board)
    await until(lambda: row_state(browser, "20260001") is None)  # answered: off the board
    assert not_reloaded(browser)
    browser.save_screenshot(str(tmp_path / "board-after.png"))
    await node.settle()
    assert next(iter(node.store("shenpi").assistance.cases())).status == "replied"


async def test_sifa_sees_a_request_go_overdue_live_when_the_clock_passes_its_deadline(
        console: str, node: Node, clock: SimulatedClock, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    request(node, assistor="ziran")
    await node.settle()
    await log_in(browser, console, "zhao")
    assert row_state(browser, "20260001") == "on-time"
    await until(lambda: "on" in (browser.find_element(By.ID, "live").get_attribute("class") or ""))
    browser.execute_script("window.__still_this_page = true")
    browser.save_screenshot(str(tmp_path / "sifa-before.png"))
    clock.set(datetime(2026, 9, 28, 9, 0, tzinfo=SHANGHAI))  # due 09-24 24:00
    await until(lambda: row_state(browser, "20260001") == "overdue")
    assert not_reloaded(browser)
    browser.save_screenshot(str(tmp_path / "sifa-overdue.png"))
    await asyncio.to_thread(browser.get, console + "/stats")
    assert "每周逾期" in browser.page_source and 'data-bureau="ziran"' in browser.page_source
    browser.save_screenshot(str(tmp_path / "sifa-stats.png"))


async def test_an_operator_cannot_open_another_bureaus_inbox(console: str, node: Node, browser: Any,
                                                             tmp_path: Path) -> None:
    request(node, assistor="ziran")
    await node.settle()
    await log_in(browser, console, "li")  # shenpi's
    await asyncio.to_thread(browser.get, console + "/inbox/ziran")
    # The console's refusal page, in 中文: shenpi's account may not look at ziran's data, and nothing of it shows.
    page = browser.page_source
    assert "未能办理" in page and "区审批服务局的账号不能查看区自然资源局的数据" in page
    assert RESIDENT["id_number"] not in page
    browser.save_screenshot(str(tmp_path / "forbidden.png"))

