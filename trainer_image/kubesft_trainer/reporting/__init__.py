"""What the trainer tells the world: metrics, /progress, logs, the summary, model card and loss curve."""
