"""The `simulate` stage: trace each model variant and simulate every configured accelerator."""
