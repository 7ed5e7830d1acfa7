"""Real Chromium for the gateway's browser tests (Debian's `chromium` and `chromium-driver`, driven by Selenium).

- `Forwarder`: a small HTTP forward proxy in a thread. The local realm only allows the redirect URI
  http://127.0.0.1:8000/..., while the test's gateway listens on a free port; Chromium sends its loopback requests
  through this proxy (`--proxy-bypass-list=<-loopback>`), which passes what is addressed to :8000 to the gateway's
  real port, as a reverse proxy would. Keycloak is reached directly.
- `Browser`: one headless Chromium (its own profile, so its own cookies) with a window size: screenshots of the
  whole page into a kept folder, the page's console errors (SEVERE entries of the browser log), and axe-core's
  accessibility check (vendored in tests/vendor/) run in the same page.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
AXE = HERE / "vendor" / "axe.min.js"
ROOT = HERE.parents[2]
BLOCKING = ("serious", "critical")  # axe impacts that fail a test
PHONE = (390, 844)  # a common phone's CSS pixels
DESK = (1280, 900)


def screenshots_dir() -> Path:
    """$SANDAN_SCREENSHOTS_DIR, else .local/screenshots/ in the repository (gitignored, kept after the run)."""
    folder = Path(os.environ.get("SANDAN_SCREENSHOTS_DIR", "").strip() or ROOT / ".local" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver; missing ones fail the test (CI installs them: .ci/run)."""
    browser = os.environ.get("SANDAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("SANDAN_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        message = ("Chromium is not installed (apt-get install chromium chromium-driver fonts-noto-cjk; "
                   "or set SANDAN_CHROMIUM and SANDAN_CHROMEDRIVER)")
        if os.environ.get("SANDAN_UNIT_ONLY") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return browser, driver


class Forwarder:
    """A forward proxy for plain HTTP: one request per connection (it asks both ends to close afterwards), the
    body and the answer piped through unchanged (so server-sent events stream). Only loopback is reachable."""

    def __init__(self, routes: dict[tuple[str, int], tuple[str, int]]) -> None:
        self.routes = routes
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="forwarder", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
                if len(head) > 1 << 20:
                    return
            head, rest = head.split(b"\r\n\r\n", 1)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            url = urlsplit(target)
            host, port = url.hostname or "", url.port or 80
            if method == "CONNECT" or url.scheme != "http" or host not in ("127.0.0.1", "localhost"):
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            host, port = self.routes.get((host, port), (host, port))
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = [h for h in header_lines
                    if h.split(":", 1)[0].strip().lower() not in ("connection", "proxy-connection", "keep-alive")]
            out = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
            upstream.sendall(out + rest)
            pump = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            pump.start()
            _pipe(upstream, client)
        except (OSError, ValueError):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class Browser:
    """One headless Chromium; `who` names it in screenshots and failures."""

    def __init__(self, who: str, size: tuple[int, int], proxy_port: int, keycloak: str, shots: Path,
                 counter: list[int]) -> None:
        binary, driver = chromium_paths()
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--no-default-browser-check", "--disable-background-networking", "--disable-extensions",
                     "--disable-sync", "--disable-component-update", "--hide-scrollbars", "--lang=zh-CN",
                     f"--window-size={size[0]},{size[1]}", f"--proxy-server=http://127.0.0.1:{proxy_port}",
                     f"--proxy-bypass-list=<-loopback>;{keycloak}"):
            options.add_argument(flag)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.who, self.shots, self.counter = who, shots, counter
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(60)
        # the window's outer size includes no browser chrome in headless mode; make the viewport the size asked
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size[0] < 600})
        self.pages: list[str] = []

    def quit(self) -> None:
        with contextlib.suppress(WebDriverException):
            self.driver.quit()

    # ---- navigation ---------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_loaded()

    def wait_loaded(self) -> None:
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete", 30, "page loaded")

    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def wait(self, check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
        started = time.monotonic()
        try:
            found = WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                  ignored_exceptions=(WebDriverException,)).until(lambda _: check())
            if what != "page loaded":
                with (self.shots / "waits.txt").open("a", encoding="utf-8") as log:
                    log.write(f"{time.monotonic() - started:7.1f}s  {self.who}: {what}\n")
            return found
        except TimeoutException:
            self.screenshot(f"timeout-{what or 'wait'}")
            raise AssertionError(f"{self.who}: not within {timeout}s: {what} (at {self.driver.current_url})") from None

    def find(self, testid: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def has(self, testid: str) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]'))

    def css(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def click(self, element: WebElement) -> None:
        """Click as a person does (scrolled into view first), then wait for the next page if one loads."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        self.wait_loaded()

    def type(self, selector: str, text: str) -> None:
        field = self.css(selector)
        field.clear()
        field.send_keys(text)

    def clear_cookies(self) -> None:
        """Forget every site's cookies (the gateway's session and Keycloak's), to sign in as someone else."""
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})

    def sign_in(self, base: str, username: str, password: str, lands_on: str) -> None:
        """Click 登录 on the landing page, fill Keycloak's own form, and land back on the gateway's page."""
        self.open(base + "/")
        self.click(self.find("login-big"))
        self.wait(lambda: self.driver.find_elements(By.ID, "kc-form-login"), 30, "Keycloak's login form")
        self.screenshot("keycloak-login", check_console=False)  # Keycloak's page: not ours to judge
        self.type("#username", username)
        self.type("#password", password)
        self.click(self.css("#kc-login"))
        self.wait(lambda: self.path() == lands_on, 30, f"signed in, on {lands_on}")

    # ---- evidence -----------------------------------------------------------------------------------------------
    def screenshot(self, name: str, check_console: bool = True, allow: tuple[str, ...] = (),
                   first_screen: bool = False) -> Path:
        """The whole page (or only its first screen) as PNG, numbered in the order taken; then the console must be
        clean."""
        self.counter[0] += 1
        path = self.shots / f"{self.counter[0]:02d}-{self.who}-{name}.png"
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics.get("cssContentSize") or metrics["contentSize"]
        width = max(int(content["width"]), 1)
        height = min(max(int(content["height"]), 1), 8000)
        if first_screen:
            height = min(height, int(metrics["cssLayoutViewport"]["clientHeight"]))
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        self.pages.append(f"{name}: {self.driver.current_url}")
        if check_console:
            self.assert_console_clean(name, allow)
        else:
            self.console_errors()  # read and drop
        return path

    def console_errors(self) -> list[dict[str, Any]]:
        """SEVERE entries of the browser log since the last read (uncaught errors, console.error, failed loads)."""
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def assert_console_clean(self, page: str, allow: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.console_errors() if not any(a in e.get("message", "") for a in allow)]
        assert not errors, f"{self.who} on {page}: console errors:\n" + "\n".join(e["message"] for e in errors)

    def axe(self, page: str) -> list[dict[str, Any]]:
        """axe-core in this page (WCAG 2.x A/AA and best practices); serious or critical violations fail."""
        if not self.driver.execute_script("return !!window.axe"):
            self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        violations: list[dict[str, Any]] = self.driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(function (r) { done(r.violations); }, function (e) { done([{id: 'axe-error', impact: 'critical',"
            " help: String(e), nodes: []}]); });")
        blocking = [v for v in violations if v.get("impact") in BLOCKING]
        (self.shots / f"axe-{self.who}-{page}.json").write_text(
            json.dumps(violations, ensure_ascii=False, indent=1), encoding="utf-8")
        assert not blocking, f"{self.who} on {page} ({self.driver.current_url}): axe violations:\n" + "\n".join(
            f"- {v['impact']} {v['id']}: {v['help']} at "
            + "; ".join(" ".join(n.get("target", [])) + " " + n.get("failureSummary", "").replace("\n", " ")
                        for n in v.get("nodes", [])[:4]) for v in blocking)
        return violations

    def check(self, name: str) -> Path:
        """Screenshot, clean console and axe for the page now shown."""
        path = self.screenshot(name)
        self.axe(name)
        return path


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(every)
