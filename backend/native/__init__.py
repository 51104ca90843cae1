"""The native tagging API (`/v1/tag`, `/v1/info`): routes and their response bodies."""
