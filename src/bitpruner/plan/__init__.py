"""Layer-wise bit-pruning plan on the Pareto frontier of predicted accuracy drop and cycles (bitpruning.md)."""
