"""Label Studio region result builders (ram_client.labelstudio.regions), checked against the SDK's own decoder."""
from __future__ import annotations

import numpy as np
import pytest

from ram_client.labelstudio.regions import mask_contour, polygon_result, rectangle_result, region_result


def test_rectangle_is_in_percent_of_the_image() -> None:
    item = rectangle_result("box", "image", "dog", 0.8, [0.1, 0.2, 0.5, 0.9], 200, 100)
    v = item["value"]
    assert (v["x"], v["y"], v["width"], v["height"]) == pytest.approx((10, 20, 40, 70))
    assert v["rectanglelabels"] == ["dog"] and item["original_width"] == 200 and item["score"] == 0.8


def test_brush_rle_decodes_back_with_the_sdk() -> None:
    brush = pytest.importorskip("label_studio_sdk.converter.brush")
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:20, 8:30] = True
    item = region_result("brushlabels", "brush", "image", {"label": "cat", "score": 0.5, "box": [0, 0, 1, 1],
                                                           "mask": mask}, 40, 30)
    rgba = np.asarray(brush.decode_rle(item["value"]["rle"])).reshape(30, 40, 4)
    assert np.array_equal(rgba[..., 3] > 0, mask)


def test_polygon_traces_the_boundary() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[4:10, 5:25] = True
    points = mask_contour(mask)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert (min(xs), max(xs), min(ys), max(ys)) == (5.5, 24.5, 4.5, 9.5)
    assert len(points) == 2 * (20 + 6) - 4  # every boundary pixel once
    item = polygon_result("poly", "image", "dog", 0.7, mask)
    assert item["value"]["closed"] and item["value"]["polygonlabels"] == ["dog"]
    assert polygon_result("poly", "image", "dog", 0.7, np.zeros((5, 5), bool)) is None
    # An L-shape: the trace goes round the notch, not across it.
    ell = np.zeros((10, 10), dtype=bool)
    ell[1:9, 1:4] = True
    ell[6:9, 1:9] = True
    traced = {(int(x), int(y)) for x, y in mask_contour(ell)}
    assert (5, 6) in traced and (5, 3) not in traced


def test_region_without_mask_falls_back_to_the_box() -> None:
    item = region_result("polygonlabels", "poly", "image", {"label": "dog", "score": 0.5,
                                                           "box": [0.25, 0.25, 0.75, 0.75]}, 40, 40)
    pts = np.array(item["value"]["points"])
    assert pts[:, 0].min() == pytest.approx(26.25) and pts[:, 0].max() == pytest.approx(73.75)
