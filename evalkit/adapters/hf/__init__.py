"""The Hugging Face adapters: shared cores (loading, tokens, scoring, generation) and one small file per model kind."""
