#!/usr/bin/python3
"""The web dashboard in a real browser (Debian's chromium, driven by selenium): the page
finds the services, an upgrade started from the page is promoted live without a reload, a
broken release shows its reason, a progressive step is paused and resumed from the page,
and without the token the API answers 401 and the page shows no data.

    /usr/bin/python3 tests/browser/dashboard_test.py BUILD_DIR

Screenshots go to BUILD_DIR/screenshots. Exit status 77 (skipped, said why) when
chromium, chromedriver or selenium is missing; ./run test installs them.
"""
import json
import os
import shutil
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from batond_process import Batond, api, wait_for  # noqa: E402

SKIP = 77
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError as e:
    print(f"SKIPPED: selenium is not installed ({e}); apt-get install python3-selenium")
    sys.exit(SKIP)

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Page:
    def __init__(self, driver, shots):
        self.d = driver
        self.shots = shots

    def service(self, name):
        return self.d.find_element(By.CSS_SELECTOR, f'article[data-service="{name}"]')

    def text(self, name, selector):
        return self.service(name).find_element(By.CSS_SELECTOR, selector).text

    def act(self, name, action, **fields):
        wait_for(f"the {action} button of {name}",
                 lambda: self.service(name).find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')).click()
        dialog = wait_for("the confirmation", lambda: self.d.find_element(By.ID, "confirm").get_attribute("open")
                          is not None and self.d.find_element(By.ID, "confirm"))
        for key, value in fields.items():
            box = dialog.find_element(By.CSS_SELECTOR, f'input[name="{key}"]')
            box.clear()
            box.send_keys(value)
        self.d.find_element(By.ID, "confirm-ok").click()

    def outcome(self, name, expected):
        def done():
            op = self.service(name).find_element(By.CSS_SELECTOR, ".operation")
            return op.get_attribute("data-outcome") == expected and op.text
        return wait_for(f"{name}: outcome {expected}", done, 30)

    def shot(self, label):
        path = os.path.join(self.shots, f"{label}.png")
        self.d.save_screenshot(path)
        print(f"screenshot: {path}")


def config(tmp, worker):
    service = lambda name, extra="": f"""
[service.{name}]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v1"
replicas = 1
bake_time = "0s"
[service.{name}.listen]
http = "tcp://127.0.0.1:0"
[service.{name}.ready]
notify = true
timeout = "5s"
{extra}"""
    return f"""[daemon]
control_socket = "{tmp}/ctl.sock"
state_dir = "{tmp}/state"
web = "tcp://127.0.0.1:0"
""" + service("web") + service("canary", """[service.canary.rollout]
strategy = "progressive"
steps = [10, 100]
step_time = "120s"
""")


def main():
    build = os.path.abspath(sys.argv[1])
    for tool in (CHROMEDRIVER, CHROMIUM):
        if not os.access(tool, os.X_OK):
            print(f"SKIPPED: {tool} is missing; apt-get install chromium chromium-driver")
            return SKIP
    shots = os.path.join(build, "screenshots")
    os.makedirs(shots, exist_ok=True)
    worker = os.path.join(build, "tests/test_worker")
    with Batond(build, lambda tmp: config(tmp, worker), "baton-browser-") as d:
        return check_dashboard(d.sock, shots, worker)


def check_dashboard(sock, shots, worker):
    driver = None
    try:
        url = wait_for("batond's dashboard", lambda: os.path.exists(sock) and api(sock, "GET", "/v1/dashboard")[1]
                       ["url"])
        wait_for("both services running", lambda: all(s["state"] == "running"
                                                      for s in api(sock, "GET", "/v1/status")[1]["services"]))
        base = url.split("#")[0]

        # Without the token: 401 and no data.
        try:
            urllib.request.urlopen(base + "v1/status", timeout=10)
            raise AssertionError("/v1/status answered without the token")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
            body = json.loads(e.read())
            assert body["error"]["code"] == "unauthorized", body
            assert "services" not in body

        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300",
                    "--disable-gpu", "--no-first-run"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        page = Page(driver, shots)

        driver.get(base)
        wait_for("the need-token notice", lambda: driver.find_element(By.ID, "need-token").is_displayed())
        assert not driver.find_elements(By.CSS_SELECTOR, "article[data-service]"), "services shown without a token"
        page.shot("1-no-token")

        driver.get(url)
        wait_for("the services", lambda: page.text("web", ".version") == "v1" and page.text("canary", ".version"))
        assert "#token" not in driver.current_url, "the token stayed in the address bar"
        wait_for("the live link", lambda: driver.find_element(By.ID, "link").text == "live")
        driver.execute_script("window.batonSamePage = 42")
        page.shot("2-loaded")

        # An upgrade from the page, promoted live.
        page.act("web", "upgrade", version="v2")
        text = page.outcome("web", "ok")
        assert "v2 promoted" in text, text
        wait_for("v2 in the service's header", lambda: page.text("web", ".version") == "v2")
        wait_for("the promoted event", lambda: any("promoted" in li.text and "web" in li.text
                                                   for li in driver.find_elements(By.CSS_SELECTOR, "#events li")))
        assert driver.execute_script("return window.batonSamePage") == 42, "the page was reloaded"
        assert api(sock, "GET", "/v1/services/web")[1]["version"] == "v2"
        page.shot("3-upgraded")

        # A broken release: its reason on the page, v2 still live.
        page.act("web", "upgrade", version="v3", command=f"{worker} --version v3 --exit-at-start 3")
        text = page.outcome("web", "failed")
        assert "not promoted" in text and "exited with status 3" in text, text
        assert page.text("web", ".version") == "v2"
        assert api(sock, "GET", "/v1/services/web")[1]["version"] == "v2"
        page.shot("4-broken-release")

        # A progressive handover, paused and resumed from the page, then promoted.
        page.act("canary", "upgrade", version="v2")
        wait_for("step 1 of the progressive handover",
                 lambda: "step 1 of 2: 10% of new connections" in page.text("canary", ".handover"))
        page.act("canary", "pause")
        wait_for("paused", lambda: "paused" in page.text("canary", ".handover"))
        handover = api(sock, "GET", "/v1/services/canary")[1]["handover"]
        assert handover["progressive"]["paused"] is True, handover
        page.shot("5-paused")
        page.act("canary", "resume")
        wait_for("resumed", lambda: "left" in page.text("canary", ".handover")
                 and "paused" not in page.text("canary", ".handover"))
        assert api(sock, "GET", "/v1/services/canary")[1]["handover"]["progressive"]["paused"] is False
        page.act("canary", "promote")
        wait_for("canary v2 live", lambda: page.text("canary", ".version") == "v2", 30)
        page.outcome("canary", "ok")
        page.shot("6-progressive-promoted")
        assert driver.execute_script("return window.batonSamePage") == 42, "the page was reloaded"
        print("dashboard: every check passed")
        return 0
    finally:
        if driver:
            driver.quit()


if __name__ == "__main__":
    sys.exit(main())
