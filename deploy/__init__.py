"""Operator-side deploy code behind `fabfile.py` and the Makefile's image and deploy targets.

config.py   every deploy knob, read once from the environment and `.deploy/outputs.json`
remote.py   the blue/green deploy on one host: pull, start beside, wait for /readyz, smoke, switch, stop
nginx.py    the reverse proxy's config (port 80 -> the live colour)
pins.py     the image's requirements, read from pyproject.toml (the pins CI installs)
preflight.py  `make deploy` stops at the start when a tool is missing, with the line that fixes it

Nothing here runs inside the container except pins.py (at image build time).
"""
