"""A real browser: headless Chromium (Debian's chromium + chromium-driver, driven by selenium) uses the
demo's chat page, whose messages go over a WebSocket to ``/ws`` and come back.

The screenshot is saved as ``test-artifacts/browser-chat.png``. ``./dev test`` installs the two Debian
packages; without them the test is skipped with the command that installs them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ROOT, TricornProcess

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOT = ROOT / "test-artifacts" / "browser-chat.png"


def test_chat_page_echoes_a_message(tricorn: type[TricornProcess], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server = tricorn([]).wait_ready()  # the built-in demo
    browser.get(f"{server.url}/chat")
    wait = WebDriverWait(browser, 20)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "connected"))
    box = browser.find_element(By.ID, "message")
    box.send_keys("hello from chromium ✓")
    browser.find_element(By.ID, "send").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#log .echo"), "hello from chromium ✓"))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    lines = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#log li")]
    assert lines == ["you: hello from chromium ✓", "echo: hello from chromium ✓"]
    assert SCREENSHOT.stat().st_size > 0
    # The server logged the handshake as a 101 in its access log.
    assert '"GET /ws HTTP/1.1" 101' in server.output()


def test_demo_over_https_uses_http2_and_its_chat_websocket(
    tricorn: type[TricornProcess], browser: Any, tmp_path: Any
) -> None:
    """Chromium loads the demo over https:// with HTTP/2 (ALPN), and the chat's WebSocket goes over the
    same HTTP/2 connection (RFC 8441 extended CONNECT)."""
    import trustme
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server = tricorn(
        ["--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
    ).wait_ready()
    # The test CA is not in Chromium's store: this browser session accepts the certificate it is shown.
    browser.execute_cdp_cmd("Security.setIgnoreCertificateErrors", {"ignore": True})
    base = f"https://127.0.0.1:{server.port}"
    browser.get(f"{base}/")
    wait = WebDriverWait(browser, 20)
    wait.until(ec.text_to_be_present_in_element((By.ID, "protocol"), "HTTP/2"))
    browser.get(f"{base}/chat")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "connected"))
    browser.find_element(By.ID, "message").send_keys("over h2")
    browser.find_element(By.ID, "send").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#log .echo"), "over h2"))
    shot = ROOT / "test-artifacts" / "browser-chat-h2.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    output = server.output()
    assert '"GET / HTTP/2" 200' in output
    assert '"CONNECT /ws HTTP/2" 200' in output, output
