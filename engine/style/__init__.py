"""Style: the corpus of a performer's own playing, LoRA training on it, adapters and their evaluation."""
