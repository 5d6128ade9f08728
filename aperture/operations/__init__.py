"""What operators use to run Aperture: metrics, admission control, the admin view, structured logs
and start-up conveniences. The server reports what happens through one `Observer` seam
(`observer.py`); each feature here is an observer, a handler or a start-up step."""
