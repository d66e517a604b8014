#!/bin/sh
# Build step of the demo service: byte-compile it, so a syntax error fails the deploy.
set -eu
python3 -m py_compile app.py worker.py
echo "built $GANTRY_SHA ($GANTRY_REF)"
