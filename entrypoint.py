"""Entry point of the adaptergate container action (the image's ENTRYPOINT).

Thin on purpose: the runner's contract is read and the gate run by
:func:`adaptergate.action.main`; this file only exits with its code
(0 accepted, 1 rejected, 2 invalid input, 3 evaluation failed).
"""

import sys

from adaptergate.action import main

if __name__ == "__main__":
    sys.exit(main())
