"""Browser end-to-end tests: real servers driven by headless Chromium."""
