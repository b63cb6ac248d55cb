"""Hydra override lists that make a stage run in seconds on `digits` (compose them; do not copy them)."""

# The fastest data set, large batches: few optimizer steps an epoch.
DIGITS_FAST = ["data=digits", "data.batch_size=128"]
# One batch per split and epoch: the mechanics, not the accuracy.
ONE_BATCH_PER_SPLIT = ["+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1",
                       "+trainer.limit_test_batches=1"]
# prune_bits from k=3 to a uniform target k=2, one epoch per step; no baseline, no resume.
PRUNE_BITS_QUICK = ["prune_bits.start_k=3", "prune_bits.epochs_per_step=1", "prune_bits.k=2",
                    "prune_bits.first_layer_k=2", "prune_bits.last_layer_k=2", "baseline_ckpt=null", "resume=false"]
