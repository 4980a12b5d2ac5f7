"""python -m train: the train command."""

from train.cli import main

main()
