"""report.py's parts: reading the runs, the figures, the depth-sweep figure, the page."""
