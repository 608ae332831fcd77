"""Entry point: `python bot.py` starts the relay (bot and worker) like `relay run`."""

from __future__ import annotations

import sys

from relay.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
