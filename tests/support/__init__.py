"""Helpers shared by the test suites: real server processes and a real browser."""
