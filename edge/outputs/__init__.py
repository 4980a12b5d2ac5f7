"""Result consumers: terminal line, JSON lines, systemd notify, the HTTP server (live page, API,
Prometheus metrics) and its web/ assets."""
