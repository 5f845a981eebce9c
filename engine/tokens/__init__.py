"""Notes as tokens: the tokenizer, its incremental decoder, the note grammar and condition tokens."""
