"""What serves a prediction: the project owner (`projects`: which model, thresholds and class view serve a project),
the request batcher, the chunked predict stream, the guarded media fetch and the image cache."""
