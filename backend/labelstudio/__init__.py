"""Label Studio's ML-backend protocol (v2): routes, request/response bodies, label-config binding (`config`,
`project`), building results, task checks, the webhook's corrections and the connection-title sync."""
