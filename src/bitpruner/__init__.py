"""bitpruner: structured bit pruning for bit-serial accelerators, and their cycle-level simulator."""
