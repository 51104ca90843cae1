"""Screenshots of the plugin in the real FiftyOne App, driven by headless Chromium.

Builds a small dataset in a private, throw-away MongoDB (the tests' `fo_fixtures`), runs
Tag with RAM, Find disagreements and Compute RAM similarity on it with a tiny
random-weight checkpoint (its tags mean nothing; the pictures show where things appear),
launches the App on loopback in a subprocess and saves:

* `app-operator-browser.png`: the operator browser (backtick) filtered to RAM, every operator listed;
* `app-tag-form.png` and `app-tag-form-model.png`: the Tag with RAM form, top and model options;
* `app-finetune-form.png`: the Fine-tune RAM on reviews form at its training options (drawn from the
  fine-tuner's declared options);
* `app-grid.png`: the sample grid with RAM's fields in the sidebar and on the tiles.

    apt-get install -y chromium chromium-driver && pip install selenium   # once
    PYTHONPATH=. .venv/bin/python docs/app_screenshots.py [--out docs/screenshots]

It fails (exit status 1, with the reason) when a step does not show what it should.
"""
from __future__ import annotations

# ruff: noqa: I001  (FiftyOne reads its config at import: the environment is set up first)

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

import fo_fixtures as fx  # a private MongoDB and this repository as the plugins folder; before fiftyone

import fiftyone as fo
import fiftyone.operators as foo
from PIL import Image

DATASET = "ram-annotate-screenshots"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")
LABELS = [["dog"], ["cat"], ["dog", "car"], ["car"], ["tree"], ["dog", "tree"], ["cat"], ["sky"], ["car", "dog"],
          ["tree", "sky"], ["cat", "dog"], ["boat"]]
OPERATOR_LABELS = ("Tag with RAM", "Find RAM disagreements", "Export RAM finetuning data", "Compute RAM similarity",
                   "Send RAM review batch to Label Studio", "Load RAM reviews from Label Studio",
                   "Tune RAM thresholds on reviews", "Fine-tune RAM on reviews")


class ScreenshotError(RuntimeError):
    """A page did not show what the screenshot is meant to show."""


def build_dataset(workdir: Path) -> fo.Dataset:
    from ram_model.weights.testing import make_tiny_checkpoint

    files = make_tiny_checkpoint(workdir / "model", variant="ram_plus", seed=0)
    thresholds = fx.write_thresholds(workdir / "thresholds.txt", {"dog": 0.0, "tree": 0.0, "sky": 0.0, "cat": 0.0})
    model = fx.model_params(files, thresholds=thresholds)
    images = fx.write_images(workdir / "images", len(LABELS), size=96, seed=4)
    dataset = fx.make_dataset(DATASET, images, labels=LABELS)
    dataset.persistent = True  # the App runs in another process

    def run(uri: str, params: dict) -> None:
        result = foo.execute_operator(f"{fx.PLUGIN_NAME}/{uri}", {"dataset": dataset.name, "params": params})
        result.raise_exceptions()

    run("tag_with_ram", {**model, "field": "ram", "label_field": "ground_truth", "top_k": 3})
    run("find_ram_disagreements", {"ram_field": "ram", "label_field": "ground_truth"})
    run("compute_ram_similarity", model)
    return dataset


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_app(port: int, log: Path, target: str = f"fo.load_dataset({DATASET!r})",
               wait_s: float = 120) -> subprocess.Popen:
    """The App server in its own process, on loopback, with this process's private database;
    `target` is the Python expression (a dataset or a view) it opens."""
    code = (f"import fiftyone as fo; s = fo.launch_app({target}, address='127.0.0.1', "
            f"port={port}, remote=True, auto=False); s.wait(-1)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ScreenshotError(f"the App server exited with {process.returncode}; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise ScreenshotError(f"the App server did not listen within {wait_s:.0f} s")


def stop_app(process: subprocess.Popen) -> None:
    """End the App server `launch_app` started: politely, then for good after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    service = Service(shutil.which("chromedriver") or "chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait_for_text(driver, texts: tuple[str, ...], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    missing = list(texts)
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        missing = [t for t in texts if t not in body]
        if not missing:
            return
        time.sleep(0.5)
    raise ScreenshotError(f"{what}: never showed {missing}")


def dismiss_banners(driver) -> None:
    """The App greets a new browser with an "Explore Enterprise" card; it would cover the grid."""
    for button in driver.find_elements("xpath", "//*[normalize-space(text())='Dismiss']"):
        try:
            button.click()
        except Exception:  # noqa: BLE001 - a card that went away by itself is fine
            pass


def save(driver, path: Path, width: int = 1100) -> None:
    """A small PNG: scaled to `width` and reduced to a 128-colour palette."""
    driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def take_screenshots(url: str, out: Path) -> list[Path]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    out.mkdir(parents=True, exist_ok=True)
    driver = start_browser()
    try:
        driver.get(url)
        wait_for_text(driver, ("ram_scores", "ram_vs_ground_truth_score", "ram_vs_ground_truth_missing"), 120,
                      "the dataset page")
        dismiss_banners(driver)
        time.sleep(4)  # let the grid finish drawing its tiles
        grid = out / "app-grid.png"
        save(driver, grid)

        ActionChains(driver).send_keys("`").perform()
        wait_for_text(driver, ("Tag with RAM",), 30, "the operator browser")
        ActionChains(driver).send_keys(" RAM").perform()  # " RAM" is in every label of ours, not in "frame"
        wait_for_text(driver, OPERATOR_LABELS, 30, "the operator browser filtered to RAM")
        time.sleep(1)
        browser = out / "app-operator-browser.png"
        save(driver, browser)

        entry = driver.find_element("xpath", "//*[normalize-space(text())='Tag with RAM']")
        entry.click()
        wait_for_text(driver, ("Output field", "Checkpoint", "Precision"), 60, "the Tag with RAM form")
        time.sleep(1)
        form = out / "app-tag-form.png"
        save(driver, form)
        precision = driver.find_element("xpath", "//*[normalize-space(text())='Precision']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", precision)
        wait_for_text(driver, ("Inference precision",), 10, "the Precision field's description")
        time.sleep(1)
        form_model = out / "app-tag-form-model.png"
        save(driver, form_model)
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()

        # A form drawn entirely from declared options (the fine-tuner's own, ram_model.option).
        time.sleep(1)
        ActionChains(driver).send_keys("`").perform()
        wait_for_text(driver, ("Tag with RAM",), 30, "the operator browser")
        ActionChains(driver).send_keys(" RAM").perform()
        wait_for_text(driver, ("Fine-tune RAM on reviews",), 30, "the operator browser filtered to RAM")
        driver.find_element("xpath", "//*[normalize-space(text())='Fine-tune RAM on reviews']").click()
        wait_for_text(driver, ("Model name",), 60, "the fine-tune form")
        epochs = driver.find_element("xpath", "//*[normalize-space(text())='Epochs']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", epochs)
        wait_for_text(driver, ("What to train", "Epochs", "Training batch size", "Passes over the training images"), 10,
                      "the fine-tune form's training options")
        time.sleep(1)
        finetune_form = out / "app-finetune-form.png"
        save(driver, finetune_form)
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()
        return [browser, form, form_model, finetune_form, grid]
    except ScreenshotError:
        driver.save_screenshot(str(out / "failed-step.png"))  # what the page showed instead
        raise
    finally:
        driver.quit()


def build_and_shoot(dataset: str, build: Callable[[Path], object], shoot: Callable[[str, Path], list[Path]],
                    out: Path) -> int:
    """Build the dataset in a scratch folder, serve it in the App, take the screenshots, clean up.

    `shoot(url, out)` gets the dataset's App page; the exit status is 1 (reason on stderr)
    when a page did not show what it should."""
    workdir = Path(tempfile.mkdtemp(prefix="ram-annotate-screens-"))
    app = None
    try:
        build(workdir)
        port = free_port()
        app = launch_app(port, workdir / "app.log", target=f"fo.load_dataset({dataset!r})")
        paths = shoot(f"http://127.0.0.1:{port}/datasets/{dataset}", out)
    except ScreenshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if app is not None:
            stop_app(app)
        shutil.rmtree(workdir, ignore_errors=True)
    for path in paths:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the ram-annotate plugin in the FiftyOne App")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    return build_and_shoot(DATASET, build_dataset, take_screenshots, args.out)

if __name__ == "__main__":
    sys.exit(main())
