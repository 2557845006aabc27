#!/usr/bin/env python3
"""End to end with a real browser: headless Chromium, driven through
chromedriver's W3C WebDriver HTTP API by a tiny client written here with
urllib and json (Python's standard library only).

Usage: web_app_browser.py SERVER [server options...]

Starts the server (--port 0), loads its page in Chromium, checks the page,
waits (bounded) until the live counter shown by the page's own script has
advanced, clicks the quit() link, checks the goodbye page, and checks that
the program exited with status 0 reporting nothing through qiloop's
logging on stderr. Needs the Debian packages chromium and chromium-driver
(scripts/deps.sh chromium chromium-driver; scripts/test.sh installs them):
without them the test fails saying so.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15.0  # seconds: the browser's start is the slowest step

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from web_app_client import Server, check, fail  # noqa: E402  (the same server handling)


class WebDriver:
    """The few W3C WebDriver commands the test needs."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as reply:
                return json.loads(reply.read())["value"]
        except urllib.error.HTTPError as e:
            fail("WebDriver %s %s: %s" % (method, path, e.read().decode(errors="replace")[:500]))

    def start(self, user_data_dir):
        options = {"binary": CHROMIUM,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--no-first-run", "--no-default-browser-check", "--user-data-dir=" + user_data_dir]}
        value = self.call("POST", "/session",
                          {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = value["sessionId"]

    def cmd(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find(self, css):
        """The element's id, or None."""
        request = urllib.request.Request("%s/session/%s/element" % (self.base, self.session),
                                         data=json.dumps({"using": "css selector", "value": css}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as reply:
                return list(json.loads(reply.read())["value"].values())[0]
        except urllib.error.HTTPError:
            return None  # "no such element"

    def text(self, element):
        return self.cmd("GET", "/element/%s/text" % element)

    def quit(self):
        if self.session:
            try:
                self.call("DELETE", "/session/" + self.session)
            except SystemExit:
                pass
            self.session = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    fail("%s: not within %d s" % (what, timeout))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        fail("%s missing: install the Debian packages with `scripts/deps.sh chromium chromium-driver`"
             % " and ".join(missing))

    server = Server(sys.argv[1:])
    profile = tempfile.mkdtemp(prefix="web_app_browser.")
    driver_port = free_port()
    chromedriver = subprocess.Popen([CHROMEDRIVER, "--port=%d" % driver_port], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    driver = WebDriver(driver_port)
    try:
        def ready():
            try:
                return driver.call("GET", "/status")["ready"]
            except (urllib.error.URLError, ConnectionError):
                return False
        wait_until("chromedriver ready", ready)
        driver.start(profile)
        print("ok: headless Chromium started", flush=True)

        driver.go(server.url)
        check(driver.cmd("GET", "/title") == "qiloop web app in process", "Chromium loads the page (its title)")
        count = driver.find("#count")
        check(count is not None and driver.find("a#bye") is not None and driver.find("a#reload") is not None,
              "the page shows the counter and the quit() and reload links")
        first = int(driver.text(count))
        advanced = wait_until("the counter on the page advances by 3",
                              lambda: int(driver.text(count)) >= first + 3 and int(driver.text(count)))
        check(True, "the page's script shows the counter advancing (%d -> %d)" % (first, advanced))
        requests = int(driver.text(driver.find("#requests")))
        check(requests >= 2, "the page's polls reach the server (%d requests so far)" % requests)

        driver.cmd("POST", "/element/%s/click" % driver.find("a#bye"), {})
        goodbye = wait_until("the goodbye page", lambda: driver.find("p#bye"))
        check(driver.text(goodbye) == "goodbye", "clicking quit() shows the goodbye page")

        rc, out, err = server.wait_exit()
        check(rc == 0, "the program exits with status 0 (status %s)" % rc)
        check("web_app_in_process: stopping on /bye" in out, "it stops on /bye")
        check(not any(line.startswith("qiloop:") for line in err.splitlines()),
              "qiloop reports nothing on stderr (no leaked task, no unretrieved exception)")
    finally:
        driver.quit()
        chromedriver.terminate()
        try:
            chromedriver.wait(timeout=5)
        except subprocess.TimeoutExpired:
            chromedriver.kill()
            chromedriver.wait()
        server.kill()
        shutil.rmtree(profile, ignore_errors=True)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
