"""Screenshot: a free-text query (not a RAM tag name) sorting the grid in the real FiftyOne App (issue 20).

Builds a small dataset in a private MongoDB, runs Compute RAM similarity with the tiny
random RAM++ and the tiny random CLIP text encoder (`text_encoder: random:tiny`; the order
means nothing, the picture shows the path), then launches the App on the view
`sort_by_similarity("a dog on a beach")`: the App's own process rebuilds the model from the
index's zoo entry and embeds the text, as it does for a query typed into its search box.
Saves `app-text-search.png`.

    PYTHONPATH=. .venv/bin/python docs/app_text_search_screenshot.py [--out docs/screenshots]
"""
from __future__ import annotations

# ruff: noqa: I001  (FiftyOne reads its config at import: the environment is set up first)

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "docs")]

import app_screenshots as shots  # sets up the private MongoDB (fo_fixtures) before fiftyone is imported
import fo_fixtures as fx

import fiftyone.operators as foo

DATASET = "ram-annotate-text-search"
QUERY = "a dog on a beach"


def build_dataset(workdir: Path) -> None:
    from ram_model.weights.testing import make_tiny_checkpoint

    files = make_tiny_checkpoint(workdir / "model", variant="ram_plus", seed=0)
    images = fx.write_images(workdir / "images", 12, size=96, seed=7)
    dataset = fx.make_dataset(DATASET, images)
    dataset.persistent = True
    params = {**fx.model_params(files), "text_encoder": "random:tiny"}
    result = foo.execute_operator(f"{fx.PLUGIN_NAME}/compute_ram_similarity",
                                  {"dataset": dataset.name, "params": params})
    result.raise_exceptions()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ram-annotate-text-search-"))
    app = driver = None
    try:
        build_dataset(workdir)
        port = shots.free_port()
        target = f"fo.load_dataset({DATASET!r}).sort_by_similarity({QUERY!r}, k=8, brain_key='ram_sim')"
        # The App's process embeds the query before it listens: loading the model takes a while.
        app = shots.launch_app(port, workdir / "app.log", target=target, wait_s=300)
        driver = shots.start_browser()
        driver.get(f"http://127.0.0.1:{port}/datasets/{DATASET}")
        shots.wait_for_text(driver, ("8 samples",), 120, "the sorted view (k=8 of 12 samples)")
        shots.dismiss_banners(driver)
        time.sleep(4)
        path = args.out / "app-text-search.png"
        shots.save(driver, path)
    except shots.ScreenshotError as e:
        if driver is not None:
            driver.save_screenshot(str(args.out / "failed-step.png"))
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if driver is not None:
            driver.quit()
        if app is not None:
            shots.stop_app(app)
        shutil.rmtree(workdir, ignore_errors=True)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
