#!/usr/bin/env python3
"""websocket_echo's page in headless Chromium, driven through WebDriver
(Debian's chromium, chromium-driver and python3-selenium).
Usage: ws_browser.py PORT

Loads http://127.0.0.1:PORT/, waits for the socket to open, clicks
"Send!" (the original's message), then sends a text of its own, and reads
both replies from the page; leaving the page closes the socket (1000).
Prints "browser: ... ok" per step and "browser: all ok"; exits 1 on a
failure."""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PORT = int(sys.argv[1])
TIMEOUT = 20


def check(condition, what):
    if not condition:
        print(f"browser: FAILED: {what}", flush=True)
        sys.exit(1)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-extensions", "--remote-debugging-pipe"):
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.set_page_load_timeout(TIMEOUT)
    wait = WebDriverWait(driver, TIMEOUT)
    driver.get(f"http://127.0.0.1:{PORT}/")
    wait.until(lambda d: d.find_element(By.ID, "status").text == "open")
    print("browser: page loaded, socket open ok", flush=True)

    driver.find_element(By.ID, "send").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#replies li")) == 1)
    log = driver.find_element(By.ID, "log").text
    check(log == 'I have received this message from you : {"output":"Sent from my browser!"}\n'
                 "Glad to be your webserver.", f"the log shows {log!r}")
    print("browser: the original's message and reply ok", flush=True)

    text = driver.find_element(By.ID, "text")
    text.clear()
    text.send_keys("<b>not bold</b> κόσμε")
    driver.find_element(By.ID, "send").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#replies li")) == 2)
    second = driver.find_elements(By.CSS_SELECTOR, "#replies li")[1].text
    check(second == 'I have received this message from you : {"output":"<b>not bold</b> κόσμε"}\n'
                    "Glad to be your webserver.", f"the second reply shows {second!r}")
    check(driver.find_elements(By.CSS_SELECTOR, "#replies b") == [], "a reply was rendered as HTML")
    print("browser: a message of its own, shown as text ok", flush=True)

    driver.get("about:blank")  # beforeunload: ws.close(1000)
    print("browser: page left", flush=True)
finally:
    driver.quit()
print("browser: all ok", flush=True)
