"""Object storage (S3-compatible stores and local folders) and local copies of remote sources."""
