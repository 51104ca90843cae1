"""Screenshots of RAM's regions in the real FiftyOne App: Detect RAM's tags' boxes and masks,
and the heatmap Tag with RAM's "Evidence maps" option writes.

Reuses `docs/app_screenshots.py` (private MongoDB, the App on loopback in a subprocess, headless
Chromium). Every model has random weights (RAM, detector and segmenter `random:tiny`, with
thresholds that make tags and boxes fire): the pictures show where the labels appear, not what
a trained model finds. Saves:

* `app-detections.png`: a sample opened in the App with the `boxes` fo.Detections (boxes and SAM masks);
* `app-heatmap.png`: a sample opened with its `ram_heatmap` fo.Heatmap over the image (the tiny model's
  map is 2x2 cells, coloured by value on the viridis scale).

    PYTHONPATH=. .venv/bin/python docs/app_screenshots_regions.py [--out docs/screenshots]

It fails (exit status 1, with the reason) when a page does not show what it should.
"""
from __future__ import annotations

# ruff: noqa: I001  (app_screenshots sets FiftyOne's config up before fiftyone is imported)

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app_screenshots as shots  # the private database first, then fiftyone

import fiftyone as fo
import fiftyone.operators as foo

DATASET = "ram-annotate-regions"
LABELS = [["dog"], ["cat"], ["dog", "car"], ["tree"], ["dog", "tree"], ["cat"]]
FIRED = ("dog", "cat", "tree")


def build_dataset(workdir: Path) -> fo.Dataset:
    """Tag with RAM (evidence maps on) and Detect RAM's tags (random detector + SAM) on a few images."""
    from ram_model.weights.testing import make_tiny_checkpoint

    fx = shots.fx
    files = make_tiny_checkpoint(workdir / "model", variant="ram_plus", seed=0)
    thresholds = fx.write_thresholds(workdir / "thresholds.txt", {t: 0.0 for t in FIRED})
    model = fx.model_params(files, thresholds=thresholds)
    images = fx.write_images(workdir / "images", len(LABELS), size=256, seed=7)
    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    dataset = fx.make_dataset(DATASET, images, labels=LABELS)
    dataset.persistent = True  # the App runs in another process

    def run(uri: str, params: dict) -> dict:
        result = foo.execute_operator(f"{fx.PLUGIN_NAME}/{uri}", {"dataset": dataset.name, "params": params})
        result.raise_exceptions()
        return result.result

    run("tag_with_ram", {**model, "field": "ram", "evidence": True})
    detected = run("detect_with_ram", {**model, "field": "boxes", "detector": "random:tiny",
                                       "segmenter": "random:tiny", "box_threshold": 0.0})
    if not detected.get("boxes"):
        raise shots.ScreenshotError(f"Detect RAM's tags wrote no boxes: {detected}")
    dataset.reload()
    # The App leaves dense labels (heatmaps) unticked by default; these two start ticked.
    dataset.app_config.active_fields = fo.ActiveFields(paths=["boxes", "ram_heatmap"])
    # Coloured by value, a heatmap shows its values on a colour scale (by field: one tint, by intensity)
    # and each box takes its label's colour.
    dataset.app_config.color_scheme = fo.ColorScheme(color_by="value",
                                                     colorscales=[{"path": "ram_heatmap", "name": "viridis"}])
    dataset.save()
    dataset.save_view("detections", dataset.select_fields("boxes"))
    dataset.save_view("heatmap", dataset.select_fields("ram_heatmap"))
    return dataset


def _open_sample(driver, url: str, fields: tuple[str, ...], what: str) -> None:
    driver.get(url)
    shots.wait_for_text(driver, fields, 120, what)
    shots.dismiss_banners(driver)
    time.sleep(5)  # the modal's looker draws its overlays after the page text appears


def take_screenshots(base_url: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    sample_id = fo.load_dataset(DATASET).first().id
    driver = shots.start_browser()
    try:
        _open_sample(driver, f"{base_url}?view=detections&id={sample_id}", ("boxes",), "the sample with boxes")
        detections = out / "app-detections.png"
        shots.save(driver, detections)
        _open_sample(driver, f"{base_url}?view=heatmap&id={sample_id}", ("ram_heatmap",), "the sample's heatmap")
        heatmap = out / "app-heatmap.png"
        shots.save(driver, heatmap)
        return [detections, heatmap]
    except shots.ScreenshotError:
        driver.save_screenshot(str(out / "failed-step.png"))
        raise
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of RAM's boxes and heatmaps in the FiftyOne App")
    parser.add_argument("--out", type=Path, default=shots.REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    return shots.build_and_shoot(DATASET, build_dataset, take_screenshots, args.out)

if __name__ == "__main__":
    sys.exit(main())
