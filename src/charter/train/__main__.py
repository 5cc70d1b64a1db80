"""`python -m charter.train sft|dpo|reward ...` is `charter train ...`; it exists so that a multi-GPU
run can be started with `accelerate launch -m charter.train dpo --data ... --out ...`."""

import sys

from charter.cli import main

if __name__ == "__main__":
    sys.argv.insert(1, "train")
    main()
