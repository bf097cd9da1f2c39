"""The base model: hub downloads, loading, chat templates and LoRA."""
