"""Q4 multiple operators (SPEC section 8).

    python sweeps/q4_multi_operator.py --profile laptop            # embedded local Ray
    ray job submit -- python sweeps/q4_multi_operator.py --profile paper   # on a cluster
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sciml.sweeps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("q4"))
