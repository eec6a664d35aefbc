"""What the service tells its operators about itself: Prometheus metrics (``metrics``) and
the gauges ``/metrics`` computes from the database and Redis when it is scraped
(``scrape``). The per-request JSON log line and the ``/metrics`` route are Flask code and
live in ``lootbox.api.observability``; docs/runbook.md says what to do about each."""
