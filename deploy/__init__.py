"""Operator-side deploy code behind `fabfile.py` and the Makefile's image and deploy targets.

config.py   every deploy knob, read once from the environment and the stack outputs (`make outputs`)
paths.py    the operator-side files the steps share (the stack outputs), each path written once
remote.py   one host as the deploy drives it: pull, start a colour, wait for /readyz, smoke, stop
proxy_ops.py  the host's proxy: its config pointed at a colour, its container, the public check
steps.py    the blue/green steps: start beside, switch, stop the old colour; rollback; status
nginx.py    the reverse proxy's config (port 80 -> the live colour)
pins.py     the image's requirements, read from pyproject.toml (the pins CI installs)
preflight.py  `make deploy` stops at the start when a tool is missing, with the line that fixes it

Nothing here runs inside the container except pins.py (at image build time).
"""
