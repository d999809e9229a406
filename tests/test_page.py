"""The page at / of scripts/serve.py, used as a person uses it: in a real browser (headless
Chromium driven by Selenium), against the real server process on loopback serving two versions
of the tests' tiny model. The explain route behind it is also spoken to over HTTP, for its limits.

Where Chromium, its driver or selenium is missing, the browser tests skip, saying so; under CI
(CI set) that is a failure instead, so that CI never passes without them."""

import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import ROOT, run_main, serving

pytestmark = pytest.mark.slow  # a server process and a browser of its own

SCREENSHOT = ROOT / "docs" / "images" / "page.png"
MODEL = "/v1/models/imdb_sentiment"
EXPLAIN = MODEL + ":explain"
# Version 1's card: markup that must show as these characters and never run.
CARD = '# A card\n\n<b>not bold</b> <script>window.cardRan = 1</script> & "quoted"\n'
# The reviews typed into the page whose answers are checked against predict.py's
TYPED = "A wonderful film with a superb cast, though the ending was dull."
KEYED = "Boring and pointless: the worst plot, the actors awful."
CHOSEN = "A brilliant and delightful story."


def flip(source, target):
    """A real export that answers otherwise: `source` with the blend's weights negated, so that it
    reads every review the other way round (its log-odds negated)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(source))
    for variable in loaded.variables:
        if variable.name.startswith("blend/"):
            variable.assign(-variable)
    tf.saved_model.save(loaded, str(target), signatures=dict(loaded.signatures))


@pytest.fixture(scope="module")
def models(trained, tmp_path_factory):
    """Version 1: the trained model read backwards, with a model card; version 2: the trained
    model, without a card (as exported before cards: one is made from model_info.json)."""
    base = tmp_path_factory.mktemp("page") / "imdb_sentiment"
    flip(trained["version"], base / "1")
    (base / "1" / "model_card.md").write_text(CARD)
    shutil.copytree(trained["version"], base / "2")
    (base / "2" / "model_card.md").unlink(missing_ok=True)
    return base


@pytest.fixture(scope="module")
def server(models):
    # --max-queued 1: one long explanation fills the model queue (the load test)
    flags = ["--latest-versions", "2", "--poll-seconds", "0.5", "--max-queued", "1"]
    with serving(models, *flags) as s:
        yield s


@pytest.fixture(scope="module")
def cli(models) -> dict:
    """Per version: what predict.py prints for each review checked, and the Predictor that
    --explain explains with."""
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it
    from imdb_sentiment.predict import Predictor

    out = {}
    for version in ("1", "2"):
        proc = run_main(main, "--model", models / version, TYPED, KEYED, CHOSEN)
        assert proc.returncode == 0, proc.stderr[-2000:]
        printed = [json.loads(line) for line in proc.stdout.splitlines()]
        out[version] = dict(
            zip([TYPED, KEYED, CHOSEN], printed), predictor=Predictor(models / version)
        )
    return out


@pytest.fixture(scope="module")
def browser():
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    found = {"chromium": binary, "chromium-driver": driver, "selenium": webdriver}
    if missing := [name for name, there in found.items() if not there]:
        why = (
            f"no {', '.join(missing)}: the page's browser tests need Debian's chromium and "
            "chromium-driver, and selenium (the test extra)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run them (.ci/run installs them)")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # --no-sandbox: Chromium will not start its sandbox as root, which CI containers run as
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    options.add_argument("--window-size=1000,1000")
    options.add_argument("--hide-scrollbars")  # for the screenshot
    options.add_argument("--force-device-scale-factor=1")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def console_errors(browser) -> list:
    """The console's errors since the last call (a refused script or style, a failed request)."""
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def explain_in_page(browser, text: str, keys: bool = False) -> dict:
    """Types the review into the page and asks for its explanation, with the button or with
    Ctrl+Enter; what the page then shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.ID, "review")
    box.clear()
    box.send_keys(text)
    if keys:
        box.send_keys(Keys.CONTROL, Keys.ENTER)
    else:
        browser.find_element(By.ID, "go").click()
    return shown(browser, lambda s: s["given"] == text)


_SHOWN = """
const $ = (id) => document.getElementById(id);
return {
  ready: !$("result").hidden && !$("go").disabled,
  label: $("label").textContent,
  probability: Number($("probability").dataset.value),
  version: $("answered").textContent,
  given: $("given").textContent,
  tokens: [...document.querySelectorAll("#tokens span")].map(
    (s) => [s.textContent, Number(s.dataset.change), getComputedStyle(s).backgroundColor]),
  status: $("status").textContent,
};
"""


def shown(browser, wanted) -> dict:
    """What the page's result shows, once it is shown and `wanted` of it."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(b):
        now = b.execute_script(_SHOWN)
        return now if now["ready"] and wanted(now) else None

    return WebDriverWait(browser, 60).until(done, message="the page showed no such result")


def assert_shows_the_cli(result: dict, cli: dict, text: str) -> None:
    """The label and probability predict.py gives for the text with the version that answered,
    and one coloured span per token with the log-odds change --explain gives (explain.explain)."""
    from imdb_sentiment.explain import explain

    predicted = cli[result["version"]][text]
    assert result["label"] == predicted["label"]
    assert result["probability"] == pytest.approx(predicted["probability"], abs=1e-6)
    e = explain(cli[result["version"]]["predictor"], text)
    assert [t for t, _, _ in result["tokens"]] == e.words
    changes = [c for _, c, _ in result["tokens"]]
    np.testing.assert_allclose(changes, e.attributions, rtol=0, atol=1e-6)
    for _, change, colour in result["tokens"]:
        if abs(change) > 0.01 * max(np.abs(changes)):  # rgb() where fully opaque
            rgb = re.match(r"rgba?\((\d+, \d+, \d+)", colour)[1]
            assert rgb == ("0, 150, 60" if change > 0 else "210, 40, 40")


def call(url: str, path: str, body=None, raw: bytes | None = None):
    """(status, headers, JSON answer) of a POST (GET without a body)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data), timeout=60) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_the_page_is_self_contained_and_sends_a_content_security_policy(server):
    with urllib.request.urlopen(server["url"] + "/", timeout=30) as r:
        html, headers = r.read().decode(), r.headers
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy and "connect-src 'self'" in policy
    # nothing fetched from elsewhere: no CDN, no web font, no file of the server's
    assert not re.search(r"""(?:src|href)\s*=\s*(?!["']?data:)""", html)
    assert "url(" not in html and "@import" not in html


def test_a_typed_review_shows_the_verdict_and_words_of_predict_and_explain(browser, server, cli):
    browser.get(server["url"] + "/")
    assert browser.title.startswith("imdb-sentiment")
    assert console_errors(browser) == []
    result = explain_in_page(browser, TYPED)
    assert result["version"] == "2"  # the newest, unless another is chosen
    assert_shows_the_cli(result, cli, TYPED)
    assert_shows_the_cli(explain_in_page(browser, KEYED, keys=True), cli, KEYED)
    assert console_errors(browser) == []


def test_a_review_with_markup_shows_as_its_characters_and_runs_nothing(browser, server, cli):
    browser.get(server["url"] + "/")
    text = (
        '<script>window.injected = 1</script><img src=x onerror="window.injected = 2"> '
        'A "superb" cast, it\'s great & moving'
    )
    result = explain_in_page(browser, text)
    assert result["given"] == text
    tokens = [t for t, _, _ in result["tokens"]]
    assert tokens == cli["2"]["predictor"].tokens(text) and {'"', "'s", "&"} <= set(tokens)
    ran = browser.execute_script(
        "return [window.injected, document.querySelectorAll('main img, main script').length]"
    )
    assert ran == [None, 0]
    assert console_errors(browser) == []


def test_choosing_another_version_answers_from_it_beside_its_card(browser, server, cli, models):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from imdb_sentiment.card import read_card

    browser.get(server["url"] + "/")
    newest = explain_in_page(browser, CHOSEN)
    card = browser.find_element(By.ID, "card-title").get_attribute("textContent")
    assert "made from model_info.json" in card
    made = browser.find_element(By.ID, "card-text").get_attribute("textContent")
    assert made == read_card(models / "2") and "| validation, the model |" in made
    Select(browser.find_element(By.ID, "version")).select_by_value("1")
    older = shown(browser, lambda s: s["version"] == "1")
    assert_shows_the_cli(newest, cli, CHOSEN)
    assert_shows_the_cli(older, cli, CHOSEN)
    assert older["label"] != newest["label"]  # version 1 reads reviews the other way round
    card = browser.find_element(By.ID, "card-text")
    assert card.get_attribute("textContent") == CARD  # the Markdown as text, markup and all
    assert card.find_elements(By.CSS_SELECTOR, "*") == []
    assert browser.execute_script("return window.cardRan") is None
    assert console_errors(browser) == []


def test_the_readme_screenshot_is_the_real_page(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server["url"] + "/")
    example = browser.find_elements(By.CLASS_NAME, "example")[0]
    example.click()
    shown(browser, lambda s: s["given"] == example.text)
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG") and console_errors(browser) == []
    from imdb_sentiment.files import atomic_file

    with atomic_file(SCREENSHOT) as tmp:
        tmp.write_bytes(png)


def test_explain_refuses_an_over_long_body_or_review_with_the_servers_error(server):
    url = server["url"]
    status, _, answer = call(url, EXPLAIN, raw=b'{"instances": ["' + b"dull " * 20000 + b'"]}')
    assert status == 413 and "over the limit" in answer["error"]
    long = " ".join(["superb"] * 2001)  # a small body, but more tokens than explain takes
    status, _, answer = call(url, EXPLAIN, {"instances": [long]})
    assert status == 400 and "2001 tokens" in answer["error"]
    status, _, answer = call(url, EXPLAIN, {"instances": ["one", "two"]})
    assert status == 400 and "limit is 1" in answer["error"]
    status, _, answer = call(url, MODEL + "/versions/2:explain", {"instances": ["superb film"]})
    assert status == 200 and answer["explanations"][0]["tokens"] == ["superb", "film"]


def test_explain_under_load_gets_503_with_retry_after_then_answers_again(server):
    url, long = server["url"], " ".join(["superb film , but dull"] * 400)  # 2,000 tokens
    answers = {}
    held = threading.Thread(
        target=lambda: answers.update(long=call(url, EXPLAIN, {"instances": [long]}))
    )
    held.start()
    time.sleep(0.3)  # the long explanation holds the one model slot (--max-queued 1) now
    status, headers, answer = call(url, EXPLAIN, {"instances": ["dull"]})
    assert status == 503 and headers["Retry-After"] == "1" and "retry" in answer["error"]
    assert call(url, MODEL + ":predict", {"instances": ["dull"]})[0] == 503  # the same cap
    held.join(60)
    assert (
        answers["long"][0] == 200 and len(answers["long"][2]["explanations"][0]["tokens"]) == 2000
    )
    assert call(url, EXPLAIN, {"instances": ["dull"]})[0] == 200


def test_a_new_version_shows_after_a_reload(browser, server, models, trained):
    from selenium.webdriver.common.by import By

    def options():
        return [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#version option")]

    browser.get(server["url"] + "/")
    assert options() == ["1", "2 (newest)"]
    shutil.copytree(trained["version"], models / ".3.partial")  # whole before it has its number
    (models / ".3.partial").rename(models / "3")
    deadline = time.time() + 60
    while time.time() < deadline:
        status = call(server["url"], MODEL)[2]["model_version_status"]
        if [s["version"] for s in status] == ["2", "3"]:
            break
        time.sleep(0.3)
    browser.refresh()
    assert options() == ["2", "3 (newest)"]
    assert browser.find_element(By.ID, "version").get_attribute("value") == "3"
    assert console_errors(browser) == []
