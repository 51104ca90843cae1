"""Dataset-scale tagging on a Ray cluster (`ram-annotate tag ... --ray`): the optional `[ray]` extra.

Nothing here imports Ray at module import time: `options` only declares flags, and the
modules that need Ray import it when a run asks for a cluster, so the embedded default
(one engine in one process) never pays for Ray and works without it installed.

The run: the driver lists files and applies the resume rule (exactly as `tag` does);
Ray tasks read and decode the images (`ram_model.inference.engine.decode_for_model`); an actor
pool, one engine per actor, runs the model (`TaggingEngine.predict_prepared`); the
driver writes the result lines as blocks come back, in input order. See docs/ray.md.
"""
