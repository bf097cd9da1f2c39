"""Support modules the tests share: Kubernetes objects and specs, S3, trainer runs and configs,
data loading, checkpoints, and what an image can import."""
