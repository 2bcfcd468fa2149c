"""Real-browser tests: the widget in JupyterLab, driven by Chromium through Playwright."""
