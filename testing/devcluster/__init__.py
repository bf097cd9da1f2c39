"""A local Kubernetes for tests and demos: a real, current control plane, a node that runs pods as
processes, and an S3 server, all on this machine."""
