"""The one Label Studio layer of ram-annotate, shared by the server (`backend`) and the FiftyOne plugin.

- `results`: the result format: a Choices or Taxonomy result item, the one score rule, the
  annotation that counts, reading a control's values back.
- `regions`: region results from detections: RectangleLabels, BrushLabels (Label Studio's RLE),
  PolygonLabels (a traced boundary).
- `evidence_regions`: RectangleLabels results from RAM's evidence boxes.
- `tasks`: what the plugin's review round sends and reads back: the labeling config, the
  task-data keys, RAM's prediction and the reviewed choices.
- `tokens`: the one rule for telling a personal access token from a legacy token.
- `client`: the REST calls the review round makes.

No FastAPI, FiftyOne, torch or ram_model here: the plugin and the server both import it,
and neither may import the other.
"""
