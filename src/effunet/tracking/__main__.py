"""python -m effunet.tracking relocate sqlite:///path/to/mlflow.db"""

import logging
import sys

from effunet.tracking.store import relocate_store

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 3 or sys.argv[1] != "relocate":
        sys.exit("usage: python -m effunet.tracking relocate sqlite:///path/to/mlflow.db")
    print(f"{relocate_store(sys.argv[2])} artifact locations updated")
