"""The trainer's inputs: the config file, the SFTConfig built from it, the pod environment and speed settings."""
