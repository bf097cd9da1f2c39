"""The SFTJob contract both images install: spec and status models, the progress report, exit codes
and the pod contract. Pure pydantic: importing it never imports torch or kopf.
"""
