"""Ways to serve the app beyond one uvicorn process (`ray_serve`: `ram-annotate serve --ray`)."""
