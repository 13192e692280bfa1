"""``python -m adaptergate``: the same as the ``adaptergate`` command."""

from adaptergate.cli import main

if __name__ == "__main__":
    main()
