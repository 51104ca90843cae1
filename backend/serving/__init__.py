"""What serves a prediction: the project owner (`projects`: which model, thresholds and class view serve a project),
the request batcher, the chunked predict stream, the guarded media fetch, the image cache, and `ray_serve`
(`ram-annotate serve --ray`: the same app on Ray Serve)."""
