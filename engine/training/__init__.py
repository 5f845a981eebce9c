"""Training: the pre-training corpus, the data pipeline and the training loop."""
